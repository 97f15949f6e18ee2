// millrace step wrapper for TypeScript (bun, deno): call main() of ./main.ts with ./args.json.
//
// Only node: built-ins and fetch, which both runtimes provide: this file is copied
// into step pods with the sdk folder beside its own (../sdk). It never prints while the
// step runs: the step's stdout and stderr are the user's. The outcome goes to the step
// API. In a pod (MILLRACE_EXIT_ON_FAILURE, set by launch.sh) a failed step's stack then
// goes to stderr and the process exits 1, so the pod's log shows it and its Job is Failed.
// Windmill passes arguments to main by position, matched to the parameter
// names; the runtime has stripped the types, so main.toString() names them.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { send, StepApiError } from "../sdk/windmill-client/api.ts";

const SCRIPT = "main.ts";
const ARGS = "args.json";
const WRAPPER = fileURLToPath(import.meta.url);

// Hand the outcome document to the step API; a result too large to send becomes the step's error.
async function report(document: string): Promise<void> {
  try {
    await send("POST", "report", document);
  } catch (refusal) {
    if (!(refusal instanceof StepApiError) || refusal.status !== 413) throw refusal;
    await send("POST", "report", failure("ResultError", `the result could not be reported: ${refusal.message}`));
  }
}

function failure(name: string, message: string, stack = ""): string {
  return JSON.stringify({ ok: false, error: { name, message, stack } });
}

type Thrown = { name?: unknown; message?: unknown; stack?: unknown; errors?: unknown; position?: Position };
type Position = { file: string; line: number; column: number };

// Whatever was thrown, as an error; the wrapper's own stack frames dropped.
// Bun reports a script that does not build as a build message, or an
// AggregateError of them, with positions: those join the message.
function thrown(error: unknown): string {
  if (typeof error !== "object" || error === null) return failure("Error", String(error));
  const { name, message, stack, errors } = error as Thrown;
  const details = (Array.isArray(errors) ? errors : []).map((inner: Thrown) => `\n${inner.message}${at(inner)}`);
  const frames = String(stack ?? "").split("\n").filter((line) => !line.includes(WRAPPER));
  return failure(String(name ?? "Error"), String(message ?? error) + at(error as Thrown) + details.join(""), frames.join("\n"));
}

function at({ position }: Thrown): string {
  return position ? ` (${position.file}:${position.line}:${position.column})` : "";
}

function success(result: unknown): string {
  try {
    return JSON.stringify({ ok: true, result });
  } catch (problem) {
    return failure("ResultError", `result is not JSON: ${(problem as Error).message ?? problem}`);
  }
}

// Parameter names of a function's source, in order; undefined for a
// destructured one, which has no name to match; rest parameters left out.
function parameterNames(source: string): Array<string | undefined> {
  const text = source.replace(/^\s*async\b/, "").trimStart();
  const bare = /^([\w$]+)\s*=>/.exec(text);
  if (bare) return [bare[1]];
  const names: Array<string | undefined> = [];
  let depth = 0;
  let quote = "";
  let piece = "";
  let inDefault = false;
  const finish = () => {
    const name = piece.trim();
    if (name && !name.startsWith("...")) names.push(/^[{[]/.test(name) ? undefined : name);
    piece = "";
    inDefault = false;
  };
  for (let i = text.indexOf("(") + 1; i > 0 && i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
      continue;
    }
    if (c === "/" && (text[i + 1] === "/" || text[i + 1] === "*")) {
      const end = text.indexOf(text[i + 1] === "/" ? "\n" : "*/", i + 2);
      i = end < 0 ? text.length : end + (text[i + 1] === "/" ? 0 : 1);
      continue;
    }
    if (c === "'" || c === '"' || c === "`") quote = c;
    else if ("([{".includes(c)) depth++;
    else if (")]}".includes(c) && depth === 0) break;
    else if (")]}".includes(c)) depth--;
    else if (c === "," && depth === 0) {
      finish();
      continue;
    } else if (c === "=" && depth === 0) inDefault = true;
    if (!inDefault) piece += c;
  }
  finish();
  return names;
}

async function runStep(): Promise<string> {
  const args = JSON.parse(readFileSync(ARGS, "utf8"));
  let main: unknown;
  try {
    main = (await import(pathToFileURL(join(process.cwd(), SCRIPT)).href)).main;
  } catch (error) {
    return thrown(error);
  }
  if (typeof main !== "function") return failure("ReferenceError", `${SCRIPT} exports no main() function`);
  const positional = parameterNames(main.toString()).map((name) => (name === undefined ? undefined : args[name]));
  try {
    return success(await main(...positional));
  } catch (error) {
    return thrown(error);
  }
}

if (import.meta.main) {
  const document = await runStep();
  await report(document);
  const outcome = JSON.parse(document);
  if (!outcome.ok && process.env.MILLRACE_EXIT_ON_FAILURE) {
    process.stderr.write(outcome.error.stack || `${outcome.error.name}: ${outcome.error.message}\n`);
    process.exit(1);
  }
  process.exit(0); // a timer or socket the script left open must not hold the step
}
