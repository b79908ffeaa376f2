// Lists the native sources of one build group for binding.gyp and CMakeLists.txt, so adding a
// file never means editing the build files.
//   portable : every .cc under native/ except the CUDA backend and the ISA-specific files
//   avx2     : files named *_avx2.cc   (built with -mavx2 -mfma -mf16c)
//   avx512   : files named *_avx512.cc (built with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16)
//   amx      : files named *_amx.cc (the avx512 flags plus -mamx-tile -mamx-bf16)
//   fuzz     : the parsers' sources, for the fuzz harnesses
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const group = process.argv[2] ?? 'portable';

function walk(dir) {
  const out = [];
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...walk(rel));
    else if (entry.name.endsWith('.cc')) out.push(rel);
  }
  return out.sort();
}

const all = walk('native').filter((f) => !f.startsWith('native/backend/cuda/'));
const isa = (f) => /_(avx2|avx512|amx|neon)\.cc$/.test(f);
const groups = {
  portable: all.filter((f) => !isa(f)),
  avx2: all.filter((f) => f.endsWith('_avx2.cc')),
  avx512: all.filter((f) => f.endsWith('_avx512.cc')),
  amx: all.filter((f) => f.endsWith('_amx.cc')),
  neon: all.filter((f) => f.endsWith('_neon.cc')),
  core: all.filter((f) => f.startsWith('native/core/')),
};
const list = groups[group];
if (!list) {
  console.error(`unknown source group ${group}`);
  process.exit(1);
}
process.stdout.write(list.join(' '));
