"""One hardened V8 isolate (mini-racer) and the JavaScript side of the sandbox.

The isolate holds a registry of compiled expression functions behind a
frozen global `__millrace` with two entry points:

- `compile(names, candidates, report)`: builds `new Function(...names, body)`
  for the first candidate body that parses; returns its index, or the
  SyntaxError of candidate `report`.
- `run(index, contextJson)`: parses the context, calls the function with the
  context values in `names` order and returns the JSON of the result.

Both answer a string: JSON on success, `!` + JSON `{name, message}` when
JavaScript threw. Timeouts and memory exhaustion cannot be caught in
JavaScript; they surface as `IsolateTimeout` / `IsolateOutOfMemory`.

After setup every object reachable from the global object is frozen, so an
expression cannot change what a later expression sees (`Array.prototype`,
`JSON`, globals), nor reach the registry. Web-ish extras that mini-racer or
V8 add (timers, WebAssembly, shared memory) are removed first.
"""

from __future__ import annotations

import json
import queue
from typing import Any

from py_mini_racer import JSOOMException, JSTimeoutException, MiniRacer
from py_mini_racer._exc import JSTerminatedException

_PRELUDE = r"""
(() => {
  "use strict";
  const g = globalThis;
  for (const name of ["setTimeout", "clearTimeout", "__timer_manager",
                      "WebAssembly", "Atomics", "SharedArrayBuffer"]) {
    // mini-racer's timers are `var`s (not deletable): blank them instead.
    if (!Reflect.deleteProperty(g, name)) g[name] = undefined;
  }
  const { parse, stringify } = JSON;
  const { hasOwn } = Object;
  const Fn = Function;
  const fns = [];

  const text = (value) => {
    try {
      return typeof value === "object" && value !== null ? stringify(value) : String(value);
    } catch {
      return "[unprintable value]";
    }
  };
  const failure = (e) => {
    if (e instanceof Error) {
      return "!" + stringify({ name: text(e.name), message: text(e.message) });
    }
    return "!" + stringify({ name: "Uncaught", message: text(e) });
  };
  const lookup = (kind, table) => (path) => {
    if (typeof path === "string" && table && hasOwn(table, path)) return table[path];
    throw new ReferenceError(`${kind} not found: ${text(path)}`);
  };

  const api = {
    compile(names, candidates, report) {
      const errors = [];
      for (const body of candidates) {
        try {
          fns.push({ names, fn: new Fn(...names, body) });
          return stringify(fns.length - 1);
        } catch (e) {
          errors.push(e);
        }
      }
      return failure(errors[report]);
    },
    run(index, contextJson) {
      try {
        const context = parse(contextJson);
        context.variable = lookup("variable", context.variables);
        context.resource = lookup("resource", context.resources);
        const { names, fn } = fns[index];
        const value = fn(...names.map((name) => context[name]));
        if (value instanceof Promise) {
          throw new TypeError("the expression returned a Promise; asynchronous expressions are not supported");
        }
        const out = stringify(value);
        return out === undefined ? "null" : out;
      } catch (e) {
        return failure(e);
      }
    },
  };

  Object.defineProperty(g, "__millrace", { value: Object.freeze(api) });

  const seen = new Set();
  const pending = [g, function* () {}, async function () {}, async function* () {},
                   [][Symbol.iterator](), new Map()[Symbol.iterator](),
                   new Set()[Symbol.iterator](), ""[Symbol.iterator](), "".matchAll(/x/g)];
  while (pending.length) {
    const o = pending.pop();
    if (seen.has(o)) continue;
    seen.add(o);
    for (const key of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, key);
      for (const v of [d.value, d.get, d.set]) {
        if ((typeof v === "object" && v !== null) || typeof v === "function") pending.push(v);
      }
    }
    const proto = Reflect.getPrototypeOf(o);
    if (proto) pending.push(proto);
    Object.freeze(o);
  }
})();
"""

# How long to wait for V8 to acknowledge a cancelled evaluation.
_CANCEL_GRACE_S = 5.0


class IsolateTimeout(Exception):
    """The evaluation was terminated by the time limit."""


class IsolateOutOfMemory(Exception):
    """V8 hit the hard memory limit; the isolate must be replaced."""


class Isolate:
    """A V8 isolate with the sandbox prelude installed.

    Not thread-safe: the fast path (below) shares one result queue per
    isolate, so one thread at a time may use an instance. `usable` turns
    False after memory exhaustion or a cancellation V8 did not honour; the
    owner then replaces the isolate.
    """

    def __init__(self, max_memory_bytes: int, fast: bool | None = None) -> None:
        self.usable = True
        self._stuck = False
        self._racer = MiniRacer()
        self._racer.set_hard_memory_limit(max_memory_bytes)
        self._fast = _fast_path_available(self._racer) if fast is None else fast
        self.eval(_PRELUDE, timeout_s=10.0)

    def compile(self, names: list[str], candidates: list[str], report: int, timeout_s: float) -> str:
        args = json.dumps([names, candidates, report])
        return self.eval(f"__millrace.compile(...{args})", timeout_s)

    def run(self, index: int, context_json: str, timeout_s: float) -> str:
        return self.eval(f"__millrace.run({index},{json.dumps(context_json)})", timeout_s)

    def eval(self, code: str, timeout_s: float) -> Any:
        try:
            if self._fast:
                return self._eval_fast(code, timeout_s)
            return self._racer.eval(code, timeout_sec=timeout_s)
        except (JSTimeoutException, JSTerminatedException) as exc:
            raise IsolateTimeout from exc
        except JSOOMException as exc:
            self.usable = False
            raise IsolateOutOfMemory from exc

    def _eval_fast(self, code: str, timeout_s: float) -> Any:
        """Evaluate on V8's thread and wait on the result queue directly.

        mini-racer's public `eval(timeout_sec=...)` hops through its asyncio
        loop thread, which costs ~150 µs a call; going straight to the
        library's task API and cancelling on timeout costs ~50 µs. It relies
        on mini-racer internals, checked by `_fast_path_available`.
        """
        ctx = self._racer._ctx
        assert ctx is not None  # None only once the racer is closed
        code_handle = ctx._python_to_value_handle(code)
        task = ctx._dll.mr_eval(ctx._ctx, code_handle.raw, 0)
        results = ctx._non_cancelable_mr_task_results_queue
        try:
            handle = results.get(timeout=timeout_s)
        except queue.Empty:
            ctx._dll.mr_cancel_task(ctx._ctx, task)
            try:
                handle = results.get(timeout=_CANCEL_GRACE_S)
            except queue.Empty as exc:
                self.usable, self._stuck = False, True
                raise IsolateTimeout from exc
        return ctx._value_handle_to_python(handle)

    def close(self) -> None:
        # Freeing a context whose task never stopped would block: leak it instead.
        if not self._stuck:
            self._racer.close()


def _fast_path_available(racer: MiniRacer) -> bool:
    ctx = getattr(racer, "_ctx", None)
    dll = getattr(ctx, "_dll", None)
    return all(
        hasattr(obj, name)
        for obj, name in [
            (ctx, "_python_to_value_handle"),
            (ctx, "_value_handle_to_python"),
            (ctx, "_non_cancelable_mr_task_results_queue"),
            (ctx, "_ctx"),
            (dll, "mr_eval"),
            (dll, "mr_cancel_task"),
        ]
    )
