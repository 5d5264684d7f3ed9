// Benchmark (not a test): BLAKE3 throughput of sw/js/blake3.js on 1 MiB
// inputs: the JavaScript and the WebAssembly SIMD engine side by side,
// then the chosen one aligned and unaligned, one-shot and streamed in
// 64 KiB pieces.
//
//   node sw/test/bench-blake3.mjs [seconds per case, default 2]
//
// `node --test sw/test/` also loads every .mjs under a test/ directory;
// there this file does nothing, so the test run stays fast.
import { blake3, blake3With, engine, Hasher } from '../js/blake3.js';

function bench(name, fn, bytes, seconds) {
  for (let i = 0; i < 20; i++) fn(); // warm up: let V8 optimise
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < seconds * 1000) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
    t = performance.now();
  }
  const mbs = (n * bytes) / 1e6 / ((t - t0) / 1000);
  console.log(`${name.padEnd(36)} ${mbs.toFixed(0).padStart(6)} MB/s  (${n} x ${bytes} bytes)`);
  return mbs;
}

if (!process.env.NODE_TEST_CONTEXT) {
  const seconds = Number(process.argv[2] || 2);
  const size = 1 << 20;
  const buf = new Uint8Array(size + 1);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 2654435761) >>> 24;
  const aligned = buf.subarray(0, size);
  const unaligned = buf.subarray(1, size + 1);
  console.log(`node ${process.version}, ${process.arch}; engine chosen here: ${engine()}`);
  // The two engines in turn, twice: neither always meets a busier machine.
  for (let round = 0; round < 2; round++) {
    const js = bench('JavaScript, 1 MiB', () => blake3With('js', aligned), size, seconds);
    let simd = 0;
    try {
      simd = bench('WebAssembly SIMD, 1 MiB', () => blake3With('wasm-simd', aligned), size, seconds);
    } catch (err) {
      console.log(`WebAssembly SIMD: ${err.message}`);
    }
    if (simd) console.log(`SIMD / JavaScript: ${(simd / js).toFixed(2)}x`);
  }
  bench('blake3(1 MiB), aligned', () => blake3(aligned), size, seconds);
  bench('blake3(1 MiB), unaligned', () => blake3(unaligned), size, seconds);
  bench('Hasher, 1 MiB in 64 KiB pieces', () => {
    const h = new Hasher();
    for (let o = 0; o < size; o += 65536) h.update(aligned.subarray(o, o + 65536));
    return h.digest();
  }, size, seconds);
  const small = aligned.subarray(0, 4096);
  bench('blake3(4 KiB)', () => blake3(small), 4096, seconds);
}
