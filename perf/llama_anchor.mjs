// The llama.cpp anchor: prompt processing (pp) and token generation (tg) speed of llama.cpp on a
// GGUF written by perf_gguf_write from the same checkpoint vlm runs, through the npm package
// node-llama-cpp (its prebuilt CPU binaries; nothing is compiled). Like llama-bench: pp = P prompt
// tokens in one evaluation, tg = N tokens generated one at a time after a 1-token prompt; best of R.
//
//   NODE_PATH=DIR/node_modules node perf/llama_anchor.mjs FILE.gguf [--prompt 512] [--gen 128]
//       [--threads 2] [--reps 2]
// where DIR holds `npm install node-llama-cpp @node-llama-cpp/linux-x64` (scripts/setup.sh does not
// install it: a benchmark's tool, not a dependency of the build).
import { createRequire } from "node:module";
import path from "node:path";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
};
const file = args.find((a) => a.endsWith(".gguf"));
if (!file) {
    console.error("usage: node perf/llama_anchor.mjs FILE.gguf [--prompt P] [--gen N] [--threads T] [--reps R]");
    process.exit(2);
}
const P = opt("--prompt", 512), N = opt("--gen", 128), T = opt("--threads", 2), R = opt("--reps", 2);

// ESM ignores NODE_PATH: resolve the package through it explicitly.
const roots = (process.env.NODE_PATH || "").split(":").filter(Boolean);
const require = createRequire(path.join(roots[0] || process.cwd(), "x.js"));
const { getLlama } = await import(require.resolve("node-llama-cpp"));

const llama = await getLlama({ gpu: false, build: "never", maxThreads: T });
const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
const ctx = await model.createContext({ contextSize: P + N + 8, batchSize: P, threads: T });
const seq = ctx.getSequence();
const tokens = Array.from({ length: P }, (_, i) => 1000 + ((i * 7919) % 140000)); // ordinary text ids

let pp = 0, tg = 0;
for (let r = 0; r < R; r++) {
    await seq.clearHistory();
    let t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(tokens);
    pp = Math.max(pp, P / ((performance.now() - t0) / 1000));

    await seq.clearHistory();
    let n = 0;
    t0 = performance.now();
    for await (const _tok of seq.evaluate([tokens[0]], { temperature: 0 })) {
        if (++n >= N) break;
    }
    tg = Math.max(tg, n / ((performance.now() - t0) / 1000));
}
console.log(`llama.cpp (node-llama-cpp, CPU, ${T} threads) ${path.basename(file)}: pp${P} ${pp.toFixed(2)} tok/s, ` +
            `tg${N} ${tg.toFixed(2)} tok/s`);
await ctx.dispose();
await model.dispose();
await llama.dispose();
