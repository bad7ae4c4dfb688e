// ts_conc.mjs — the SyncGuard TS reference for `scripts/bench concurrent` (a benchmark,
// never a test). Written for this project; SyncGuard itself is not in this repository:
// scripts/bench compiles a checkout of github.com/kriasoft/syncguard outside the tree and
// passes the directory of the compiled modules.
//
//   node ts_conc.mjs SYNCGUARD_DIR BACKEND URL N SECONDS
//     SYNCGUARD_DIR  compiled SyncGuard (its redis/, postgres/, firestore/ index.js)
//     BACKEND        redis | postgres | firestore
//     URL            redis://host:port, postgres://user@host:port/db, or the Firestore
//                    project id (FIRESTORE_EMULATOR_HOST must point at the emulator)
//     N              loops in flight, each acquire + release on its own key
//
// Uses each backend's public API as SyncGuard's docs describe it (createXBackend on one
// client instance with its defaults, backend.acquire / backend.release), runs 0.5 s of
// warm-up, then SECONDS measured, and prints the same lines as `sg_bench conc`:
//   "<name> <ops> ops/s  p50 <us> us  p99 <us> us"
//   "  errors E, fewest cycles of one loop F (of M mean), client CPU per cycle C us"
// SG_BENCH_TS_PG_MAX sets postgres.js's pool size (its default, 10, otherwise).
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [dir, backendName, url, nArg, secsArg] = process.argv.slice(2);
if (!dir || !backendName || !url || !nArg || !secsArg) {
  console.error("usage: node ts_conc.mjs SYNCGUARD_DIR redis|postgres|firestore URL N SECONDS");
  process.exit(2);
}
const n = Number(nArg), secs = Number(secsArg);
const mod = (p) => import(pathToFileURL(join(dir, p, "index.js")).href);

let backend, close;
if (backendName === "redis") {
  const { default: Redis } = await import("ioredis");
  const { createRedisBackend } = await mod("redis");
  const redis = new Redis(url, { lazyConnect: false });
  backend = createRedisBackend(redis);
  close = () => redis.quit();
} else if (backendName === "postgres") {
  const { default: postgres } = await import("postgres");
  const { createPostgresBackend, setupSchema } = await mod("postgres");
  const opts = { onnotice: () => {} };
  if (process.env.SG_BENCH_TS_PG_MAX) opts.max = Number(process.env.SG_BENCH_TS_PG_MAX);
  const sql = postgres(url, opts);
  await setupSchema(sql);
  backend = createPostgresBackend(sql);
  close = () => sql.end({ timeout: 5 });
} else if (backendName === "firestore") {
  if (!process.env.FIRESTORE_EMULATOR_HOST) {
    // the official client would otherwise go looking for Google credentials
    console.error("ts_conc: FIRESTORE_EMULATOR_HOST must be set (loopback emulator only)");
    process.exit(2);
  }
  // and its auth library would probe the GCE metadata server (169.254.169.254): never
  process.env.METADATA_SERVER_DETECTION = "none";
  const { Firestore } = await import("@google-cloud/firestore");
  const { createFirestoreBackend } = await mod("firestore");
  const db = new Firestore({ projectId: url });
  backend = createFirestoreBackend(db);
  close = () => db.terminate();
} else {
  console.error(`ts_conc: unknown backend ${backendName}`);
  process.exit(2);
}

async function run(seconds, print) {
  const end = performance.now() + seconds * 1000;
  const lat = [], counts = new Array(n).fill(0);
  let errors = 0;
  const loop = async (i) => {
    const key = `bench-ts-conc-${process.pid}-${i}`;
    while (performance.now() < end) {
      const t = performance.now();
      try {
        const r = await backend.acquire({ key, ttlMs: 30000 });
        if (!r.ok) throw new Error("acquire: locked");
        const rel = await backend.release({ lockId: r.lockId });
        if (!rel.ok) throw new Error("release: not ok");
      } catch (e) {
        if (errors++ < 3) console.error(`ts_conc: ${e.message ?? e}`);
        continue;
      }
      lat.push(performance.now() - t);
      counts[i]++;
    }
  };
  const cpu0 = process.cpuUsage(), t0 = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => loop(i)));
  const el = (performance.now() - t0) / 1000, cpu = process.cpuUsage(cpu0);
  if (!print) return;
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.floor(p * (lat.length - 1))] * 1000 : 0);
  const total = lat.length;
  const name = `TS concurrent ${n} cycle`;
  console.log(`${name.padEnd(22)} ${(total / el).toFixed(0).padStart(10)} ops/s  p50 ${pct(0.5).toFixed(1).padStart(8)} us  p99 ${pct(0.99).toFixed(1).padStart(8)} us`);
  console.log(`  errors ${errors}, fewest cycles of one loop ${Math.min(...counts)} (of ${(total / n).toFixed(0)} mean), client CPU per cycle ${((cpu.user + cpu.system) / (total || 1)).toFixed(1)} us`);
}

await run(0.5, false);
await run(secs, true);
await close();
process.exit(0);
