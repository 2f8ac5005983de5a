// The optional MPI addon: an allGather of float64 arrays over MPI_COMM_WORLD,
// for lib/collective/mpi.ts. Built apart from the kernels addon
// (native/mpi/binding.gyp, scripts/build-mpi.sh) and only where MPI is
// installed: the package works without it.
//
// One dedicated thread owns MPI: it initialises it (MPI_THREAD_FUNNELED),
// runs the collectives one after another in the order JS asked for them, and
// finalises it when the environment is torn down. A collective therefore
// never blocks the event loop: JS gets a Promise, settled from the MPI thread
// through a thread-safe function. Every call is two MPI_Allgathers: first a
// header (op, length) so that ranks calling different collectives or passing
// different lengths all reject with the same message instead of hanging or
// reading garbage, then the data.
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Request {
  int64_t op = 0;  // 1 allGather, 2 allReduceSum (the sum is taken in JS, in rank order), 3 an invalid call
                   // (JS rejects it)
  std::vector<double> data;
  std::vector<double> result;
  std::string error;
  Napi::Promise::Deferred deferred;
  explicit Request(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void settle(Napi::Env env, Napi::Function, void*, Request* req);
using Completion = Napi::TypedThreadSafeFunction<void, Request, settle>;

// The one MPI thread of the process (MPI initialises once per process).
class MpiThread {
 public:
  // Starts the thread and waits for MPI_Init_thread; returns an error message, or "".
  std::string start() {
    thread_ = std::thread([this] { run(); });
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return started_; });
    return init_error_;
  }
  void submit(Request* r) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(r);
    }
    cv_.notify_all();
  }
  // Lets the thread finish its queue, finalise MPI and end. With `wait`
  // false (a collective still in flight at exit, which may wait for ranks
  // that never call it) the thread is left behind and MPI not finalised:
  // mpirun then reports the rank as gone, as it should.
  void stop(bool wait) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (!thread_.joinable()) return;
    if (wait)
      thread_.join();
    else
      thread_.detach();
  }
  int rank = 0, size = 1;
  Completion completion;

 private:
  void run() {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (rc != MPI_SUCCESS) init_error_ = "MPI_Init_thread failed: " + error_string(rc);
      if (rc == MPI_SUCCESS) {
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
      }
      started_ = true;
    }
    cv_.notify_all();
    if (rc != MPI_SUCCESS) return;
    for (;;) {
      Request* r = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) break;  // stopping, nothing left
        r = queue_.front();
        queue_.pop_front();
      }
      execute(*r);
      completion.BlockingCall(r);
    }
    MPI_Finalize();
  }

  static std::string error_string(int rc) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
    return std::string(text, len);
  }

  void execute(Request& r) const {
    static const char* names[] = {"", "allGather", "allReduceSum", "an invalid call"};
    // The header of every rank: (op, length).
    const int64_t mine[2] = {r.op, int64_t(r.data.size())};
    std::vector<int64_t> headers(2 * size_t(size));
    int rc = MPI_Allgather(mine, 2, MPI_INT64_T, headers.data(), 2, MPI_INT64_T, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
      r.error = "MPI_Allgather failed: " + error_string(rc);
      return;
    }
    // A rank whose argument was invalid still takes part in the header
    // exchange, so that every rank rejects instead of waiting for it.
    for (int i = 0; i < size; i++) {
      if (headers[2 * i] == 3) {
        r.error = std::string(names[r.op]) + " failed on rank " + std::to_string(rank) + " because rank " +
                  std::to_string(i) + "'s call was invalid (see the error on rank " + std::to_string(i) + ")";
        return;
      }
    }
    bool same_op = true, same_length = true;
    for (int i = 0; i < size; i++) {
      same_op = same_op && headers[2 * i] == r.op;
      same_length = same_length && headers[2 * i + 1] == mine[1];
    }
    if (!same_op || !same_length) {
      std::string list;
      for (int i = 0; i < size; i++) {
        const int64_t op = headers[2 * i];
        list += (i ? ", " : "") +
                (same_op ? std::to_string(headers[2 * i + 1])
                         : std::string(op >= 1 && op <= 3 ? names[op] : "?")) +
                " (rank " + std::to_string(i) + ")";
      }
      r.error = same_op ? std::string("Expected every rank to pass the same length to ") + names[r.op] +
                              ", but the ranks passed " + list
                        : "Expected every rank to call the same collective, but the ranks called " + list;
      return;
    }
    if (mine[1] > INT32_MAX) {
      r.error =
          "Expected at most 2^31 - 1 values per rank (an MPI count) but received " + std::to_string(mine[1]);
      return;
    }
    r.result.resize(r.data.size() * size_t(size));
    rc = MPI_Allgather(r.data.data(), int(r.data.size()), MPI_DOUBLE, r.result.data(), int(r.data.size()),
                       MPI_DOUBLE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) r.error = "MPI_Allgather failed: " + error_string(rc);
  }

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Request*> queue_;
  bool started_ = false, stopping_ = false;
  std::string init_error_;
};

MpiThread* g_mpi = nullptr;  // one per process: MPI initialises once
napi_env g_owner = nullptr;  // the environment (thread) that started it
int64_t g_pending = 0;       // calls in flight: the completion keeps the loop alive only while there are some

void settle(Napi::Env env, Napi::Function, void*, Request* req) {
  if (env != nullptr) {
    if (--g_pending == 0) g_mpi->completion.Unref(env);
    if (!req->error.empty()) {
      req->deferred.Reject(Napi::Error::New(env, req->error).Value());
    } else {
      auto out = Napi::Float64Array::New(env, req->result.size());
      if (!req->result.empty())
        std::memcpy(out.Data(), req->result.data(), req->result.size() * sizeof(double));
      req->deferred.Resolve(out);
    }
  }
  delete req;
}

// Open MPI loads its components as plugins that expect libmpi's symbols in
// the global namespace; Node loads an addon (and so libmpi) RTLD_LOCAL. As
// mpi4py does, reopen libmpi RTLD_GLOBAL before MPI_Init.
void make_libmpi_global() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

// init(): { rank, worldSize }; the first call starts MPI, later ones (same thread) return the same.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (g_mpi && g_owner != napi_env(env))
    throw Napi::Error::New(env,
                           "MPI is already running in another thread of this process: use the MPI collective "
                           "from one thread (MPI initialises once per process)");
  if (!g_mpi) {
    make_libmpi_global();
    auto* mpi = new MpiThread();
    mpi->completion = Completion::New(env, "batchnorm-mpi", 0, 1);
    mpi->completion.Unref(env);
    const std::string error = mpi->start();
    if (!error.empty()) {
      mpi->stop(true);
      mpi->completion.Release();
      delete mpi;
      throw Napi::Error::New(env, error);
    }
    g_mpi = mpi;
    g_owner = env;
    napi_add_env_cleanup_hook(
        env,
        [](void*) {
          // The environment is going away: let MPI finish what it runs, finalise, and stop.
          g_mpi->stop(g_pending == 0);
          g_mpi->completion.Release();
        },
        nullptr);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", g_mpi->rank);
  out.Set("worldSize", g_mpi->size);
  return out;
}

// allGather(op, data: Float64Array): Promise<Float64Array>; the data is copied now.
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_mpi || g_owner != napi_env(env))
    throw Napi::Error::New(env, "MPI is not initialised in this thread: call init() first");
  const int64_t op = info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : 0;
  if (op < 1 || op > 3)
    throw Napi::TypeError::New(env, "Expected op 1 (allGather), 2 (allReduceSum) or 3 (an invalid call)");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "Expected a Float64Array for data");
  auto data = info[1].As<Napi::Float64Array>();
  auto* req = new Request(env);
  req->op = op;
  req->data.assign(data.Data(), data.Data() + data.ElementLength());
  Napi::Promise promise = req->deferred.Promise();
  if (g_pending++ == 0) g_mpi->completion.Ref(env);
  g_mpi->submit(req);
  return promise;
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("allGather", Napi::Function::New(env, AllGather));
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);
  exports.Set("mpiVersion", std::to_string(major) + "." + std::to_string(minor));
  return exports;
}

}  // namespace

NODE_API_MODULE(batchnorm_mpi, Module)
