#!/usr/bin/env node
/**
 * Checks that the package ships what its README promises (CI; test/package.test.ts):
 * every relative link or image of README.md, and of the shipped Markdown files
 * it links to, names a file in the tarball (not a folder; a #fragment: a
 * heading of that file); other links must be absolute
 * (scheme:), since there is no repository to resolve them against. Also the
 * files an install needs.
 *
 *   node scripts/check-pack.mjs                     the listing of `npm pack --dry-run --ignore-scripts`
 *   node scripts/check-pack.mjs batchnorm-x.tgz     the files of a packed tarball
 *   ... --prebuilds                                 also require prebuilds/linux-{x64,arm64}/
 *
 * Prints the listing, then one line per problem; exits 1 if there is any.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const tarball = args.find((a) => !a.startsWith('--'));
const wantPrebuilds = args.includes('--prebuilds');

/** The package's files (paths relative to the package root) and a reader for their text. */
function listing() {
  if (tarball) {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
      .split('\n')
      .filter((f) => f.startsWith('package/') && !f.endsWith('/'))
      .map((f) => f.slice('package/'.length));
    return { files, read: (f) => execFileSync('tar', ['-xzOf', tarball, `package/${f}`], { encoding: 'utf8' }) };
  }
  const npm = process.env.npm_execpath;
  const cmd = npm ? [process.execPath, [npm]] : ['npm', []];
  const out = execFileSync(cmd[0], [...cmd[1], 'pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  const files = JSON.parse(out)[0].files.map((f) => f.path);
  return { files, read: (f) => readFileSync(join(root, f), 'utf8') };
}

/** Links and images of a Markdown text: [text](target), ![alt](target), <img src>, <a href>, [ref]: target. */
function links(md) {
  const text = md.replace(/^(```|~~~)[\s\S]*?^\1/gm, '').replace(/`[^`\n]*`/g, ''); // not in code
  const out = [];
  for (const m of text.matchAll(/!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]);
  for (const m of text.matchAll(/<(?:img|a)\b[^>]*?\b(?:src|href)="([^"]+)"/gi)) out.push(m[1]);
  for (const m of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) out.push(m[1]);
  return out;
}

/** GitHub-style heading anchors of a Markdown text. */
function anchors(md) {
  const text = md.replace(/^(```|~~~)[\s\S]*?^\1/gm, '');
  return new Set(
    [...text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)].map((m) =>
      m[1]
        .toLowerCase()
        .replace(/[`*_]/g, '')
        .replace(/[^\p{L}\p{N}\s-]/gu, '')
        .replace(/\s/g, '-'),
    ),
  );
}

const { files, read } = listing();
const shipped = new Set(files);
console.log(`${files.length} files${tarball ? ` in ${tarball}` : ' (npm pack --dry-run)'}:`);
for (const f of [...files].sort()) console.log(`  ${f}`);

const problems = [];
const seen = new Set();
const queue = ['README.md'];
while (queue.length) {
  const doc = queue.shift();
  if (seen.has(doc)) continue;
  seen.add(doc);
  const md = read(doc);
  for (const link of links(md)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // absolute: https:, mailto:, ...
    const [path, fragment] = link.split('#');
    const target = path === '' ? doc : posix.normalize(posix.join(posix.dirname(doc), decodeURIComponent(path))).replace(/\/$/, '');
    if (!shipped.has(target)) {
      const why = files.some((f) => f.startsWith(`${target}/`)) ? 'a folder (no page to show: link a file in it)' : 'not in the package';
      problems.push(`${doc} links to ${link}, which is ${why}`);
      continue;
    }
    if (target.endsWith('.md')) {
      queue.push(target);
      if (fragment && !anchors(read(target)).has(fragment)) problems.push(`${doc} links to ${link}: no heading #${fragment} in ${target}`);
    }
  }
}

const required = ['README.md', 'LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'scripts/install.mjs', 'binding.gyp', 'CMakeLists.txt', 'native/addon.cc', 'wasm/batchnorm.wasm'];
if (wantPrebuilds) required.push('prebuilds/linux-x64/batchnorm.napi.glibc.node', 'prebuilds/linux-arm64/batchnorm.napi.glibc.node');
for (const f of required) if (!shipped.has(f)) problems.push(`${f} is not in the package`);
for (const f of files) if (/^(test|build|node_modules|bench\/peers)\//.test(f)) problems.push(`${f} should not be in the package`);

console.log(`README links checked in: ${[...seen].join(', ')}`);
for (const p of problems) console.error(`check-pack: ${p}`);
if (problems.length) process.exit(1);
console.log('check-pack: every README link resolves in the package; the files an install needs are in it');
