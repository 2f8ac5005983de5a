// oneDNN peer harness for the batchnorm benchmark suite.
//
// Times one oneDNN batch_normalization primitive execution (CPU engine, f32)
// and prints ONE JSON line on stdout. Built by bench/peers/setup.sh:
//   g++ -O2 -fopenmp onednn_bench.cpp -o build/onednn_bench -ldnnl
//
//   build/onednn_bench --shape 32,64,56,56 --op forward-training --threads 2
//       --layout nchw|nhwc|blocked [--iters 50] [--warmup 5] [--cold]
//
// Semantics (compare with PyTorch's native_batch_norm):
//   forward-training  prop_kind::forward_training, use_scale|use_shift:
//                     batch mean/variance (written to preallocated MEAN/VARIANCE)
//                     + normalize + affine. oneDNN has NO running-stats update.
//   forward-eval      prop_kind::forward_inference, use_global_stats|use_scale|use_shift.
//   backward          prop_kind::backward, use_scale|use_shift: dx, dscale, dshift
//                     from the saved batch mean and *variance* (oneDNN saves
//                     variance, not invstd; it recomputes 1/sqrt(var+eps)).
// All buffers are allocated once; each timed iteration is one execute()+wait().

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

static const float kEps = 1e-5f;
static const size_t kColdBytes = size_t(128) << 20;

[[noreturn]] static void die(const std::string &msg, int code = 2) {
    std::fprintf(stderr, "onednn_bench: %s\n", msg.c_str());
    std::exit(code);
}

static std::string json_escape(const std::string &s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') { o += '\\'; o += c; }
        else if ((unsigned char)c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); o += b; }
        else o += c;
    }
    return o;
}

static const char *isa_name(cpu_isa isa) {
    switch (isa) {
        case cpu_isa::sse41: return "sse41";
        case cpu_isa::avx: return "avx";
        case cpu_isa::avx2: return "avx2";
        case cpu_isa::avx2_vnni: return "avx2_vnni";
        case cpu_isa::avx512_mic: return "avx512_mic";
        case cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
        case cpu_isa::avx512_core: return "avx512_core";
        case cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
        case cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
        case cpu_isa::avx512_core_amx: return "avx512_core_amx";
        default: return "all";
    }
}

struct Args {
    std::vector<long> shape;
    std::string op, layout = "nchw";
    int threads = 1, iters = 50, warmup = 5;
    bool cold = false, check = false;
    unsigned seed = 0;
};

static long to_long(const std::string &s, const char *what) {
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end || errno) die(std::string("bad ") + what + " '" + s + "'");
    return v;
}

static Args parse(int argc, char **argv) {
    Args a;
    auto need = [&](int &i) -> std::string {
        if (i + 1 >= argc) die(std::string("missing value for ") + argv[i]);
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        std::string k = argv[i], v;
        auto eq = k.find('=');
        bool has_eq = eq != std::string::npos && k.rfind("--", 0) == 0;
        if (has_eq) { v = k.substr(eq + 1); k = k.substr(0, eq); }
        auto val = [&]() { return has_eq ? v : need(i); };
        if (k == "--shape") {
            std::stringstream ss(val());
            std::string t;
            while (std::getline(ss, t, ',')) if (!t.empty()) a.shape.push_back(to_long(t, "--shape dim"));
        } else if (k == "--op") a.op = val();
        else if (k == "--layout") a.layout = val();
        else if (k == "--threads") a.threads = (int)to_long(val(), "--threads");
        else if (k == "--iters") a.iters = (int)to_long(val(), "--iters");
        else if (k == "--warmup") a.warmup = (int)to_long(val(), "--warmup");
        else if (k == "--seed") a.seed = (unsigned)to_long(val(), "--seed");
        else if (k == "--cold") a.cold = true;
        else if (k == "--check") a.check = true;
        else if (k == "-h" || k == "--help") {
            std::printf("usage: onednn_bench --shape N,C[,H,W] --op forward-training|forward-eval|backward "
                        "--threads N --layout nchw|nhwc|blocked [--iters 50] [--warmup 5] [--cold] [--seed 0] [--check]\n"
                        "  --check: after timing, compare outputs with a naive double-precision reference "
                        "(max error goes into notes; exit 4 if > 1e-3)\n");
            std::exit(0);
        } else die("unknown argument '" + k + "'");
    }
    if (a.shape.size() < 2 || a.shape.size() > 5)
        die("--shape must have 2 (N,C) or 4 (N,C,H,W) dims (3/5 also accepted)");
    for (long d : a.shape) if (d <= 0) die("--shape dims must be positive");
    if (a.op != "forward-training" && a.op != "forward-eval" && a.op != "backward")
        die("--op must be forward-training|forward-eval|backward");
    if (a.layout != "nchw" && a.layout != "nhwc" && a.layout != "blocked")
        die("--layout must be nchw|nhwc|blocked");
    if (a.threads < 1 || a.iters < 1 || a.warmup < 0) die("--threads/--iters must be >= 1, --warmup >= 0");
    return a;
}

// plain (ncsp) tag and requested tag for the rank
static tag plain_tag(size_t nd) {
    switch (nd) { case 2: return tag::nc; case 3: return tag::ncw; case 4: return tag::nchw; default: return tag::ncdhw; }
}
static tag layout_tag(size_t nd, const std::string &layout, std::string &name) {
    if (layout == "nchw") {
        static const char *n[] = {"", "", "nc", "ncw", "nchw", "ncdhw"};
        name = n[nd];
        return plain_tag(nd);
    }
    if (nd == 2)
        die("layout '" + layout + "' is not defined for a 2-D (N,C) shape; (N,C) is already channel-innermost "
            "- use --layout nchw", 3);
    if (layout == "nhwc") {
        static const char *n[] = {"", "", "", "nwc", "nhwc", "ndhwc"};
        name = n[nd];
        return nd == 3 ? tag::nwc : nd == 4 ? tag::nhwc : tag::ndhwc;
    }
    static const char *n[] = {"", "", "", "nCw16c", "nChw16c", "nCdhw16c"};
    name = n[nd];
    return nd == 3 ? tag::nCw16c : nd == 4 ? tag::nChw16c : tag::nCdhw16c;
}

static void fill_normal(float *p, size_t n, std::mt19937 &g, float mean = 0.f, float sd = 1.f) {
    std::normal_distribution<float> d(mean, sd);
    for (size_t i = 0; i < n; ++i) p[i] = d(g);
}

// Fill a memory object (any layout) with N(0,1) data via a plain buffer + reorder,
// so blocked padding stays zero as oneDNN expects.
// Returns the plain (ncsp) copy of the data, for --check.
static std::vector<float> fill_tensor(memory &dst, const memory::dims &dims, engine &eng, stream &s,
        std::mt19937 &g) {
    memory::desc pd(dims, dt::f32, plain_tag(dims.size()));
    std::vector<float> host(pd.get_size() / sizeof(float));
    fill_normal(host.data(), host.size(), g);
    memory plain(pd, eng, host.data());
    reorder(plain, dst).execute(s, plain, dst);
    s.wait();
    return host;
}

static std::vector<float> to_plain(memory &m, const memory::dims &dims, engine &eng, stream &s) {
    memory::desc pd(dims, dt::f32, plain_tag(dims.size()));
    std::vector<float> host(pd.get_size() / sizeof(float));
    memory plain(pd, eng, host.data());
    reorder(m, plain).execute(s, m, plain);
    s.wait();
    return host;
}

// Naive double-precision reference on plain N,C,(spatial) data.
// Returns max of |ref - got| / max(1, |ref|); for the backward per-channel sums
// (dscale/dshift) the error is relative to sum|terms|/sqrt(M) (f32 accumulation).
// mode 0: training fwd (y, mean, var), 1: eval fwd (y), 2: backward (dx, dscale, dshift).
static double reference_check(int mode, const memory::dims &dims, const std::vector<float> &x,
        const std::vector<float> &dy, const float *w, const float *b, const float *mean_in,
        const float *var_in, const std::vector<float> &out, const float *o1, const float *o2) {
    const long N = dims[0], C = dims[1];
    long S = 1;
    for (size_t i = 2; i < dims.size(); ++i) S *= dims[i];
    const double M = double(N) * S;
    double err = 0;
    auto upd = [&](double ref, double got) { err = std::max(err, std::abs(ref - got) / std::max(1.0, std::abs(ref))); };
    auto upd_sum = [&](double ref, double got, double scale) {  // per-channel sums: error relative to sum of |terms|
        err = std::max(err, std::abs(ref - got) / std::max(1.0, scale));
    };
    for (long c = 0; c < C; ++c) {
        auto at = [&](long n, long sp) { return size_t(n) * C * S + size_t(c) * S + sp; };
        double mu = mean_in[c], var = var_in[c];
        if (mode == 0) {
            double s1 = 0, s2 = 0;
            for (long n = 0; n < N; ++n) for (long sp = 0; sp < S; ++sp) s1 += x[at(n, sp)];
            mu = s1 / M;
            for (long n = 0; n < N; ++n) for (long sp = 0; sp < S; ++sp) { double d = x[at(n, sp)] - mu; s2 += d * d; }
            var = s2 / M;
            upd(mu, o1[c]);
            upd(var, o2[c]);
        }
        const double inv = 1.0 / std::sqrt(var + kEps);
        if (mode < 2) {
            for (long n = 0; n < N; ++n) for (long sp = 0; sp < S; ++sp)
                upd((x[at(n, sp)] - mu) * inv * w[c] + b[c], out[at(n, sp)]);
        } else {
            double sdy = 0, sdyx = 0, ady = 0, adyx = 0;
            for (long n = 0; n < N; ++n) for (long sp = 0; sp < S; ++sp) {
                double t = dy[at(n, sp)], u = t * (x[at(n, sp)] - mu) * inv;
                sdy += t; sdyx += u; ady += std::abs(t); adyx += std::abs(u);
            }
            // float accumulation over M terms: scale the tolerance by sum|terms| / sqrt(M)
            upd_sum(sdyx, o1[c], adyx / std::sqrt(M));
            upd_sum(sdy, o2[c], ady / std::sqrt(M));
            for (long n = 0; n < N; ++n) for (long sp = 0; sp < S; ++sp) {
                double xh = (x[at(n, sp)] - mu) * inv;
                upd(w[c] * inv * (dy[at(n, sp)] - sdy / M - xh * sdyx / M), out[at(n, sp)]);
            }
        }
    }
    return err;
}

// Read+write every cache line of a 128 MiB buffer on all OpenMP threads so
// every core's private L1/L2 and the shared L3 lose the benchmark data.
// (Not memset: glibc uses non-temporal stores for big sizes, which bypass caches.)
static void evict(float *buf, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += 16) buf[i] += 1.0f;
}

int main(int argc, char **argv) {
    Args a = parse(argc, argv);

    // Debian's libdnnl uses the OpenMP (libgomp) runtime: set the thread count
    // before the first oneDNN call.
    omp_set_dynamic(0);
    omp_set_num_threads(a.threads);
    if (omp_get_max_threads() != a.threads) die("omp_set_num_threads did not take effect", 3);

    std::vector<std::string> notes;
    try {
        engine eng(engine::kind::cpu, 0);
        stream s(eng);
        std::mt19937 gen(a.seed);

        const size_t nd = a.shape.size();
        memory::dims dims(a.shape.begin(), a.shape.end());
        const long C = a.shape[1];
        std::string fmt_name;
        tag t = layout_tag(nd, a.layout, fmt_name);
        memory::desc data_md(dims, dt::f32, t);
        memory::desc ch_md({C}, dt::f32, tag::x);

        // Per-channel parameters / statistics (preallocated, reused).
        memory scale(ch_md, eng), shift(ch_md, eng), mean(ch_md, eng), var(ch_md, eng);
        {
            float *w = (float *)scale.get_data_handle(), *b = (float *)shift.get_data_handle();
            std::uniform_real_distribution<float> u(0.5f, 1.5f);
            for (long c = 0; c < C; ++c) w[c] = u(gen);
            fill_normal(b, C, gen);
            float *m = (float *)mean.get_data_handle(), *v = (float *)var.get_data_handle();
            fill_normal(m, C, gen, 0.f, 0.1f);
            for (long c = 0; c < C; ++c) v[c] = u(gen);
        }

        memory src(data_md, eng), dst(data_md, eng);
        std::vector<float> x_host = fill_tensor(src, dims, eng, s, gen), dy_host;
        std::vector<float> mean0((float *)mean.get_data_handle(), (float *)mean.get_data_handle() + C);
        std::vector<float> var0((float *)var.get_data_handle(), (float *)var.get_data_handle() + C);
        std::memset(dst.get_data_handle(), 0, data_md.get_size());

        const normalization_flags ss = normalization_flags::use_scale | normalization_flags::use_shift;
        primitive prim;
        memory out_mem, o1_mem, o2_mem;  // what --check compares
        std::unordered_map<int, memory> args;
        std::string impl;

        if (a.op == "forward-training" || a.op == "backward") {
            batch_normalization_forward::desc fd(prop_kind::forward_training, data_md, kEps, ss);
            batch_normalization_forward::primitive_desc fpd(fd, eng);
            memory ws;
            if (fpd.workspace_desc().get_size()) ws = memory(fpd.workspace_desc(), eng);
            std::unordered_map<int, memory> fargs{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst},
                    {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift},
                    {DNNL_ARG_MEAN, mean}, {DNNL_ARG_VARIANCE, var}};
            if (ws) fargs[DNNL_ARG_WORKSPACE] = ws;
            batch_normalization_forward fwd(fpd);

            if (a.op == "forward-training") {
                prim = fwd;
                args = fargs;
                out_mem = dst; o1_mem = mean; o2_mem = var;
                impl = fpd.impl_info_str();
                notes.push_back("forward_training use_scale|use_shift: batch mean+variance (biased) written to "
                                "preallocated buffers + normalize + affine; oneDNN does NOT update running "
                                "stats (no momentum step is timed)");
            } else {
                // one untimed forward to produce saved mean/variance (as the torch harness does)
                fwd.execute(s, fargs);
                s.wait();
                memory diff_dst(data_md, eng), diff_src(data_md, eng);
                memory diff_scale(ch_md, eng), diff_shift(ch_md, eng);
                dy_host = fill_tensor(diff_dst, dims, eng, s, gen);
                out_mem = diff_src; o1_mem = diff_scale; o2_mem = diff_shift;
                std::memset(diff_src.get_data_handle(), 0, data_md.get_size());
                batch_normalization_backward::desc bd(prop_kind::backward, data_md, data_md, kEps, ss);
                batch_normalization_backward::primitive_desc bpd(bd, eng, fpd);
                prim = batch_normalization_backward(bpd);
                args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst},
                        {DNNL_ARG_MEAN, mean}, {DNNL_ARG_VARIANCE, var},
                        {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift}, {DNNL_ARG_DIFF_SRC, diff_src},
                        {DNNL_ARG_DIFF_SCALE, diff_scale}, {DNNL_ARG_DIFF_SHIFT, diff_shift}};
                if (ws) args[DNNL_ARG_WORKSPACE] = ws;
                impl = bpd.impl_info_str();
                notes.push_back("backward use_scale|use_shift: dx, dscale, dshift from saved mean and "
                                "VARIANCE (oneDNN saves variance, not invstd)");
            }
        } else {
            batch_normalization_forward::desc fd(prop_kind::forward_inference, data_md, kEps,
                    ss | normalization_flags::use_global_stats);
            batch_normalization_forward::primitive_desc fpd(fd, eng);
            prim = batch_normalization_forward(fpd);
            out_mem = dst;
            args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCALE, scale},
                    {DNNL_ARG_SHIFT, shift}, {DNNL_ARG_MEAN, mean}, {DNNL_ARG_VARIANCE, var}};
            impl = fpd.impl_info_str();
            notes.push_back("forward_inference use_global_stats|use_scale|use_shift: normalize with given "
                            "running mean/variance + affine");
        }

        notes.push_back("format " + fmt_name + ", impl " + impl + ", isa " + isa_name(get_effective_cpu_isa()));
        if (a.layout == "blocked" && C % 16)
            notes.push_back("C padded to " + std::to_string((C + 15) / 16 * 16) + " in nChw16c");
        notes.push_back("all buffers preallocated and reused; OpenMP threads via omp_set_num_threads");

        std::vector<float> cold_buf;
        if (a.cold) cold_buf.assign(kColdBytes / sizeof(float), 1.0f);

        for (int i = 0; i < a.warmup; ++i) { prim.execute(s, args); s.wait(); }

        std::vector<double> ms;
        ms.reserve(a.iters);
        for (int i = 0; i < a.iters; ++i) {
            if (a.cold) evict(cold_buf.data(), cold_buf.size());
            auto t0 = std::chrono::steady_clock::now();
            prim.execute(s, args);
            s.wait();
            auto t1 = std::chrono::steady_clock::now();
            ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
        std::vector<double> sorted = ms;
        std::sort(sorted.begin(), sorted.end());
        size_t n = sorted.size();
        double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);

        if (a.check) {
            int mode = a.op == "forward-training" ? 0 : a.op == "forward-eval" ? 1 : 2;
            std::vector<float> out = to_plain(out_mem, dims, eng, s);
            const float *w = (const float *)scale.get_data_handle(), *b = (const float *)shift.get_data_handle();
            // backward uses the batch stats the untimed forward wrote into mean/var
            const float *mi = mode == 1 ? mean0.data() : (const float *)mean.get_data_handle();
            const float *vi = mode == 1 ? var0.data() : (const float *)var.get_data_handle();
            const float *o1 = o1_mem ? (const float *)o1_mem.get_data_handle() : nullptr;
            const float *o2 = o2_mem ? (const float *)o2_mem.get_data_handle() : nullptr;
            double err = reference_check(mode, dims, x_host, dy_host, w, b, mi, vi, out, o1, o2);
            char buf[64];
            std::snprintf(buf, sizeof buf, "check max_err %.3g (abs, rel for |ref|>1)", err);
            notes.push_back(buf);
            if (!(err <= 1e-3)) {
                std::fprintf(stderr, "onednn_bench: --check failed: max error %g\n", err);
                std::printf("{\"impl\":\"onednn\",\"error\":\"check failed\",\"max_err\":%g}\n", err);
                return 4;
            }
        }

        const version_t *v = version();
        std::string notes_s;
        for (size_t i = 0; i < notes.size(); ++i) notes_s += (i ? "; " : "") + notes[i];
        std::string shape_s;
        for (size_t i = 0; i < nd; ++i) shape_s += (i ? "," : "") + std::to_string(a.shape[i]);

        std::printf("{\"impl\":\"onednn\",\"version\":\"%d.%d.%d\",\"shape\":[%s],\"op\":\"%s\",\"layout\":\"%s\","
                    "\"threads\":%d,\"cold\":%s,\"median_ms\":%.6f,\"min_ms\":%.6f,\"samples\":%zu,\"notes\":\"%s\"}\n",
                v->major, v->minor, v->patch, shape_s.c_str(), a.op.c_str(), a.layout.c_str(), a.threads,
                a.cold ? "true" : "false", median, sorted[0], n, json_escape(notes_s).c_str());
        std::fflush(stdout);
    } catch (const dnnl::error &e) {
        die(std::string("oneDNN error: ") + e.what() + " (status " + std::to_string((int)e.status) + ")", 3);
    } catch (const std::exception &e) {
        die(std::string("error: ") + e.what(), 3);
    }
    return 0;
}
