// The Node side of benchmarks/cold.py: time acquire+release round trips through
// `lockkit coprocess`, as a Node program that keeps one co-process would make them.
//
// node cold_driver.js '<command as a JSON array>' PATH COUNT
// Prints one JSON object: {"ms": [one number per pair]} or {"error": "..."}.
"use strict";
const { spawn } = require("child_process");

const [commandJson, path, countText] = process.argv.slice(2);
const command = JSON.parse(commandJson);
const count = Number(countText);
const WARMUP = 5;
const REPLY_TIMEOUT_MS = 30000; // a first reply may wait for a cold start

const child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
let stderr = "";
child.stderr.on("data", (chunk) => { stderr += chunk; });

let buffer = "";
let waiting = null; // {id, resolve, timer} of the request in flight

function settle(outcome) {
  const pending = waiting;
  waiting = null;
  clearTimeout(pending.timer);
  pending.resolve(outcome);
}

child.stdout.on("data", (chunk) => {
  buffer += chunk;
  let cut;
  while ((cut = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, cut);
    buffer = buffer.slice(cut + 1);
    let reply;
    try { reply = JSON.parse(line); } catch { if (waiting) settle(`not JSON: ${line.slice(0, 200)}`); continue; }
    if (waiting && reply.id === waiting.id) settle(reply.ok === true ? "" : `refused: ${line.slice(0, 200)}`);
  }
});
child.on("exit", () => { if (waiting) settle("no reply"); });
child.stdin.on("error", () => {}); // EPIPE once it exited: reported as "no reply"

function ask(request) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => settle("no reply"), REPLY_TIMEOUT_MS);
    waiting = { id: request.id, resolve, timer };
    child.stdin.write(JSON.stringify(request) + "\n");
  });
}

async function main() {
  const ms = [];
  let error = "";
  for (let n = 0; n < count + WARMUP && !error; n++) {
    const start = process.hrtime.bigint();
    error = await ask({ id: 2 * n + 1, op: "acquire", name: path, timeout: 5 });
    if (!error) error = await ask({ id: 2 * n + 2, op: "release", name: path });
    if (!error && n >= WARMUP) ms.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  child.stdin.end();
  const exited = child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.on("exit", resolve));
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
  if (error) {
    const last = stderr.trim().split("\n").pop() || "";
    process.stdout.write(JSON.stringify({ error: `${error} ${last}`.trim() }) + "\n");
  } else {
    process.stdout.write(JSON.stringify({ ms }) + "\n");
  }
}

main();
