"use strict";
// A tiny Node client of `lockkit coprocess` (protocol 1, see docs/how-to/coprocess.md).
//
//   const { CoProcess } = require("./coprocess_client.js");
//   const lockkit = await CoProcess.start({ python: "python3", args: ["--backend", "excl"] });
//   const { handle, fencing_token } = await lockkit.acquire("/srv/app/state.lock", { timeout: 10 });
//   try { /* ... */ } finally { await lockkit.release(handle); }
//   await lockkit.close(); // end of input: the co-process releases what is left and exits
//
// Every method returns a Promise of the answer object (its fields but "id" and "ok"), or
// rejects with an Error whose `type` is the protocol's error type ("LockTimeout",
// "LockNotHeld", "BadRequest"...) and whose `holder` is set for a LockTimeout.
// Used by the test suite and by the benchmarks; it depends on nothing but Node itself.

const { spawn } = require("child_process");
const readline = require("readline");

class CoProcessError extends Error {
  constructor(error) {
    super(error.message);
    this.name = "CoProcessError";
    this.type = error.type;
    this.holder = error.holder ?? null;
  }
}

class CoProcess {
  // Start `python -m lockkit coprocess ...args` and wait for its hello line.
  // options: python (default "python3"), args (extra arguments), env, stderr
  // ("inherit" by default; "pipe" or "ignore" as for child_process.spawn).
  static async start(options = {}) {
    const python = options.python ?? "python3";
    const child = spawn(python, ["-m", "lockkit", "coprocess", ...(options.args ?? [])], {
      stdio: ["pipe", "pipe", options.stderr ?? "inherit"],
      env: options.env ?? process.env,
    });
    const client = new CoProcess(child);
    client.hello = await client._hello;
    return client;
  }

  constructor(child) {
    this.child = child;
    this.pid = child.pid;
    this.nextId = 1;
    this.pending = new Map(); // id -> { resolve, reject }
    this.onEvent = null; // called with every event line but hello ({event: "lost", ...})
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    this._hello = new Promise((resolve, reject) => {
      this._helloResolve = resolve;
      child.once("error", reject);
      this.exited.then(({ code, signal }) =>
        reject(new Error(`lockkit coprocess exited (${code ?? signal}) before saying hello`)));
    });
    readline.createInterface({ input: child.stdout }).on("line", (line) => this._line(line));
    this.exited.then(() => {
      for (const { reject } of this.pending.values()) reject(new Error("lockkit coprocess exited"));
      this.pending.clear();
    });
  }

  _line(line) {
    const message = JSON.parse(line);
    if (message.event !== undefined) {
      if (message.event === "hello") this._helloResolve(message);
      else if (this.onEvent) this.onEvent(message);
      return;
    }
    const waiting = this.pending.get(message.id);
    if (waiting === undefined) return; // an error about a line that had no usable id
    this.pending.delete(message.id);
    if (message.ok) waiting.resolve(message);
    else waiting.reject(new CoProcessError(message.error));
  }

  // Send one request; fields as in the protocol, "id" is added. Resolves with the answer.
  request(fields) {
    const id = this.nextId++;
    for (const key of ["timeout", "ttl", "stale"]) {
      // JSON.stringify turns NaN and Infinity into null, which means "wait forever".
      const value = fields[key];
      if (typeof value === "number" && !Number.isFinite(value)) {
        return Promise.reject(new RangeError(`${key} must be a finite number or null, got ${value}`));
      }
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.lastId = id;
      this.child.stdin.write(JSON.stringify({ ...fields, id }) + "\n");
    });
  }

  // options: timeout (seconds; null waits forever; absent: the co-process's default),
  // ttl, stale, shared, backend. Resolves with {handle, name, backend, fencing_token, expires}.
  acquire(name, options = {}) {
    return this.request({ op: "acquire", name, ...options });
  }

  // The id the last request was sent with (to cancel a waiting acquire).
  cancel(acquireId) {
    return this.request({ op: "cancel", target: acquireId });
  }

  release(handle) {
    return this.request({ op: "release", handle });
  }

  status(name, options = {}) {
    return this.request({ op: "status", name, ...options });
  }

  // End of input: the co-process releases every lock it holds and exits with status 0.
  async close() {
    this.child.stdin.end();
    return this.exited;
  }
}

module.exports = { CoProcess, CoProcessError };
