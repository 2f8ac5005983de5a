/** binding.gyp (node-gyp) and CMakeLists.txt (cmake-js) build the same addon: same sources, defines and flags. */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

const read = (f: string) => readFileSync(new URL(`../${f}`, import.meta.url), 'utf8');
const gypText = read('binding.gyp').replace(/^\s*#.*$/gm, '');
const gyp = JSON.parse(gypText);
const cmake = read('CMakeLists.txt').replace(/#.*$/gm, '');

const sorted = (a: Iterable<string>) => [...new Set(a)].sort();

it('list the same sources, per target architecture', () => {
  const addon = gyp.targets.find((t: any) => t.target_name === 'batchnorm');
  const x64 = gyp.conditions.find((c: any) => c[0] === "target_arch=='x64'")[1].targets;
  const arm = addon.conditions.find((c: any) => c[0] === "target_arch=='arm64'")[1];
  const gypSources = { base: sorted(addon.sources), x64: sorted(x64.flatMap((t: any) => t.sources)), arm64: sorted(arm.sources) };
  const lib = cmake.match(/add_library\(\$\{PROJECT_NAME\} SHARED([\s\S]*?)\)/)![1];
  const cmakeSources = {
    base: sorted(lib.split(/\s+/).filter((s) => s.endsWith('.cc'))),
    x64: sorted([...cmake.matchAll(/add_library\(batchnorm_\w+ STATIC (\S+)\)/g)].map((m) => m[1])),
    arm64: sorted([...cmake.matchAll(/target_sources\(\$\{PROJECT_NAME\} PRIVATE (\S+)\)/g)].map((m) => m[1])),
  };
  expect(cmakeSources).toEqual(gypSources);
  expect(gypSources.base).toContain('native/addon.cc');
});

it('use the same defines and flags, with ISA flags only on the per-ISA kernels', () => {
  const td = gyp.target_defaults;
  expect(cmake).toContain(`add_compile_definitions(${td.defines.join(' ')})`);
  for (const f of [...td.cflags.filter((f: string) => f !== '-fPIC'), ...td.cflags_cc.filter((f: string) => !f.startsWith('-std'))]) expect(cmake).toContain(f);
  expect(td.defines).toContain('NAPI_VERSION=9');
  const x64 = gyp.conditions.find((c: any) => c[0] === "target_arch=='x64'")[1].targets;
  for (const t of x64) {
    const line = cmake.match(new RegExp(`target_compile_options\\(${t.target_name} PRIVATE ([^)]*)\\)`))![1];
    expect(line.split(/\s+/)).toEqual(t.cflags_cc);
  }
  expect(JSON.stringify(td)).not.toMatch(/-mavx/);
  const sanitize = td.conditions.find((c: any) => c[0] === "batchnorm_sanitize=='true'")[1];
  expect(cmake).toContain(`add_compile_options(${sanitize.cflags.join(' ')})`);
});
