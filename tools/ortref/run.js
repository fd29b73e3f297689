#!/usr/bin/env node
// Reference ONNX Runtime driver for onnx-rebasin tests.
//
// Runs an ONNX model on the CPU with onnxruntime-node and exchanges tensors
// as NumPy .npy files, so that the Go tests can check rewritten models
// against an independent runtime. See README.md beside this file.
//
// A request is a JSON object:
//   {"id": any (echoed), "model": "m.onnx", "inputs": {"x": "x.npy"},
//    "outputs_dir": "dir", "outputs": ["y"] (optional, default all),
//    "threads": 1, "optimization": "disabled"|"basic"|"extended"|"all",
//    "repeat": K (optional: after the first run, run K more times on the
//    same inputs for timing)}
// A response is a JSON object on one line:
//   {"id": ..., "outputs": {"y": {"path": "dir/y.npy", "shape": [2, 3],
//    "dtype": "<f4"}}, "timing_ms": {"load": 3.1, "run": 0.4, "io": 0.2}}
// (with "repeat", timing_ms also has "repeat": {"n": K, "median": ...,
// "min": ..., "cpu_median": ...}: wall and process CPU ms of the K runs)
// or {"id": ..., "error": "message"}.
//
// Usage:
//   node run.js '{"model": ...}'   one request given as an argument
//   node run.js request.json       one request read from a file
//   node run.js < request.json     one request read from stdin
//   node run.js --batch            JSON lines on stdin, one response line per
//                                  request; a {"ready": true, ...} line is
//                                  printed first, once ONNX Runtime has loaded
// Single-request modes exit 1 after printing an error response.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

let ort;

function loadOrt() {
  if (!ort) {
    ort = require('onnxruntime-node');
    ort.env.logLevel = 'error';
  }
  return ort;
}

if (os.endianness() !== 'LE') {
  throw new Error('run.js supports little-endian hosts only');
}

// dtype descr -> [ORT tensor type, TypedArray constructor, item size]
const DESCRS = {
  '<f4': ['float32', Float32Array, 4],
  '<f8': ['float64', Float64Array, 8],
  '<f2': ['float16', Uint16Array, 2], // raw IEEE half bits
  '<i8': ['int64', BigInt64Array, 8],
  '<i4': ['int32', Int32Array, 4],
  '<i2': ['int16', Int16Array, 2],
  '|i1': ['int8', Int8Array, 1],
  '<u8': ['uint64', BigUint64Array, 8],
  '<u4': ['uint32', Uint32Array, 4],
  '<u2': ['uint16', Uint16Array, 2],
  '|u1': ['uint8', Uint8Array, 1],
  '|b1': ['bool', Uint8Array, 1],
};
const DESCR_ALIASES = { '<i1': '|i1', '>i1': '|i1', '<u1': '|u1', '>u1': '|u1', '<b1': '|b1', '>b1': '|b1' };
const TYPE_TO_DESCR = {};
for (const [descr, [type]] of Object.entries(DESCRS)) TYPE_TO_DESCR[type] = descr;

const MAGIC = '\x93NUMPY';

// readNpy returns an ort.Tensor holding the array in the .npy file.
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== MAGIC) {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  let hlen;
  let off;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    off = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new Error(`${file}: truncated header`);
    hlen = buf.readUInt32LE(8);
    off = 12;
  } else {
    throw new Error(`${file}: unsupported .npy version ${major}.${buf[7]}`);
  }
  if (off + hlen > buf.length) throw new Error(`${file}: truncated header`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', off, off + hlen);
  const m = (re) => {
    const r = re.exec(header);
    if (!r) throw new Error(`${file}: cannot parse header ${JSON.stringify(header)}`);
    return r[1];
  };
  let descr = m(/['"]descr['"]\s*:\s*['"]([^'"]*)['"]/);
  descr = DESCR_ALIASES[descr] || descr;
  if (m(/['"]fortran_order['"]\s*:\s*(True|False)/) === 'True') {
    throw new Error(`${file}: fortran_order=True is not supported`);
  }
  const shape = m(/['"]shape['"]\s*:\s*\(([^)]*)\)/)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      if (!/^\d+L?$/.test(s)) throw new Error(`${file}: bad shape entry ${JSON.stringify(s)}`);
      return parseInt(s, 10);
    });
  const info = DESCRS[descr];
  if (!info) throw new Error(`${file}: unsupported dtype ${JSON.stringify(descr)}`);
  const [type, Ctor, size] = info;
  const count = shape.reduce((a, b) => a * b, 1);
  const nbytes = count * size;
  const dataOff = off + hlen;
  if (!Number.isSafeInteger(nbytes) || buf.length - dataOff !== nbytes) {
    throw new Error(`${file}: header promises ${nbytes} data bytes, file has ${buf.length - dataOff}`);
  }
  // Copy into a fresh, aligned buffer.
  const ab = new ArrayBuffer(nbytes);
  new Uint8Array(ab).set(buf.subarray(dataOff, dataOff + nbytes));
  return new (loadOrt().Tensor)(type, new Ctor(ab), shape);
}

// npyHeader formats the header dictionary exactly as numpy does.
function npyBytes(descr, shape, data) {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const pre = 10;
  const pad = 64 - ((pre + dict.length + 1) % 64);
  dict = dict + ' '.repeat(pad) + '\n';
  if (dict.length > 0xffff) throw new Error('npy header too long');
  const head = Buffer.alloc(pre + dict.length);
  head.write(MAGIC, 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  head.write(dict, pre, 'latin1');
  return Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

function writeNpy(file, tensor) {
  const descr = TYPE_TO_DESCR[tensor.type];
  if (!descr) throw new Error(`output tensor type ${tensor.type} cannot be written as .npy`);
  const shape = Array.from(tensor.dims, Number);
  fs.writeFileSync(file, npyBytes(descr, shape, tensor.data));
  return { shape, dtype: descr };
}

// sanitise maps an output name to a safe, unique file stem.
function sanitise(name, used) {
  let stem = String(name).replace(/[^A-Za-z0-9._-]/g, '_');
  if (stem === '' || stem.startsWith('.')) stem = '_' + stem;
  if (stem.length > 100) stem = stem.slice(0, 100);
  let candidate = stem;
  for (let i = 2; used.has(candidate.toLowerCase()); i++) candidate = `${stem}_${i}`;
  used.add(candidate.toLowerCase());
  return candidate;
}

const OPT_LEVELS = new Set(['disabled', 'basic', 'extended', 'all']);

function ms(t0) {
  return Math.round(Number(process.hrtime.bigint() - t0) / 1e4) / 100;
}

async function handle(req) {
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    throw new Error('request must be a JSON object');
  }
  const { model, outputs_dir: outDir } = req;
  const inputs = req.inputs || {};
  if (typeof model !== 'string' || model === '') throw new Error('request.model must be a path');
  if (typeof outDir !== 'string' || outDir === '') throw new Error('request.outputs_dir must be a path');
  if (typeof inputs !== 'object' || Array.isArray(inputs)) throw new Error('request.inputs must be an object');
  const threads = req.threads === undefined ? 1 : req.threads;
  if (!Number.isInteger(threads) || threads < 0) throw new Error('request.threads must be a non-negative integer');
  const optimization = req.optimization === undefined ? 'disabled' : req.optimization;
  if (!OPT_LEVELS.has(optimization)) throw new Error(`request.optimization must be one of ${[...OPT_LEVELS].join(', ')}`);
  const repeat = req.repeat === undefined ? 0 : req.repeat;
  if (!Number.isInteger(repeat) || repeat < 0) throw new Error('request.repeat must be a non-negative integer');
  if (!fs.existsSync(model)) throw new Error(`model ${model} does not exist`);
  const timing = {};

  let t0 = process.hrtime.bigint();
  const ortlib = loadOrt();
  const session = await ortlib.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: optimization,
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
  });
  timing.load = ms(t0);
  try {
    t0 = process.hrtime.bigint();
    const feeds = {};
    for (const [name, file] of Object.entries(inputs)) {
      if (!session.inputNames.includes(name)) {
        throw new Error(`model has no input ${JSON.stringify(name)}; inputs are ${JSON.stringify(session.inputNames)}`);
      }
      feeds[name] = readNpy(file);
    }
    const missing = session.inputNames.filter((n) => !(n in feeds));
    if (missing.length) throw new Error(`missing inputs ${JSON.stringify(missing)}`);
    let fetches = session.outputNames;
    if (req.outputs !== undefined) {
      if (!Array.isArray(req.outputs)) throw new Error('request.outputs must be an array of names');
      for (const n of req.outputs) {
        if (!session.outputNames.includes(n)) {
          throw new Error(`model has no output ${JSON.stringify(n)}; outputs are ${JSON.stringify(session.outputNames)}`);
        }
      }
      fetches = req.outputs;
    }
    timing.io = ms(t0);

    t0 = process.hrtime.bigint();
    // Always fetch every output and pick the requested ones afterwards:
    // onnxruntime-node (at least up to 1.23.2) returns a fetched subset
    // under the wrong output names (microsoft/onnxruntime issue 26865).
    const results = await session.run(feeds);
    timing.run = ms(t0);
    for (const name of session.outputNames) {
      if (!results[name]) throw new Error(`onnxruntime returned no value for output ${JSON.stringify(name)}`);
    }
    if (repeat > 0) timing.repeat = await timeRuns(session, feeds, repeat);

    t0 = process.hrtime.bigint();
    fs.mkdirSync(outDir, { recursive: true });
    const used = new Set();
    const outputs = {};
    for (const name of fetches) {
      const file = path.join(outDir, sanitise(name, used) + '.npy');
      const info = writeNpy(file, results[name]);
      outputs[name] = { path: file, ...info };
    }
    timing.io += ms(t0);
    return { outputs, timing_ms: timing };
  } finally {
    await session.release();
  }
}

// timeRuns runs the session n more times on feeds and summarises the wall
// and process CPU (all threads) milliseconds per run.
async function timeRuns(session, feeds, n) {
  const wall = [];
  const cpu = [];
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e3);
  }
  const median = (v) => {
    const s = [...v].sort((a, b) => a - b);
    const h = s.length >> 1;
    return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
  };
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return { n, median: r3(median(wall)), min: r3(Math.min(...wall)), cpu_median: r3(median(cpu)) };
}

function errorResponse(id, err) {
  const msg = err && err.message ? err.message : String(err);
  return id === undefined ? { error: msg } : { id, error: msg };
}

async function batch() {
  try {
    loadOrt();
  } catch (err) {
    process.stdout.write(JSON.stringify({ ready: false, error: `loading onnxruntime-node: ${err.message}` }) + '\n');
    process.exitCode = 1;
    return;
  }
  process.stdout.write(
    JSON.stringify({ ready: true, pid: process.pid, node: process.version, ort: ort.env.versions }) + '\n',
  );
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    let req;
    let resp;
    try {
      req = JSON.parse(line);
      resp = await handle(req);
      if (req.id !== undefined) resp = { id: req.id, ...resp };
    } catch (err) {
      resp = errorResponse(req && typeof req === 'object' ? req.id : undefined, err);
    }
    process.stdout.write(JSON.stringify(resp) + '\n');
  }
}

async function single(arg) {
  let req;
  try {
    let text;
    if (arg === undefined) text = fs.readFileSync(0, 'utf8');
    else if (arg.trim().startsWith('{')) text = arg;
    else text = fs.readFileSync(arg, 'utf8');
    req = JSON.parse(text);
    let resp = await handle(req);
    if (req.id !== undefined) resp = { id: req.id, ...resp };
    process.stdout.write(JSON.stringify(resp) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify(errorResponse(req && typeof req === 'object' ? req.id : undefined, err)) + '\n');
    process.stderr.write(`run.js: ${err && err.message ? err.message : err}\n`);
    process.exitCode = 1;
  }
}

function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--help' || args[0] === '-h') {
    process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').filter((l) => l.startsWith('//')).join('\n') + '\n');
    return;
  }
  if (args.length > 1) {
    process.stderr.write('usage: node run.js [--batch | REQUEST_JSON | REQUEST_FILE]\n');
    process.exitCode = 2;
    return;
  }
  if (args[0] === '--batch') batch();
  else single(args[0]);
}

main();
