// millrace step wrapper for TypeScript (bun, deno): call main() of ./main.ts with ./args.json.
//
// Only node: built-ins and fetch, which both runtimes provide: this file is copied
// into step pods with the sdk folder beside its own (../sdk). It prints only what
// Windmill's wrapper prints (bun: a thrown error, on stderr): the step's stdout and
// stderr are the user's. The outcome goes to the step API. In a pod
// (MILLRACE_EXIT_ON_FAILURE, set by launch.sh) a thrown error is printed by deno too
// and a failed step exits 1, so the pod's log shows it and its Job is Failed.
// It does what the wrapper.mjs of Windmill's bun_executor.rs and the wrapper.ts of
// its deno_executor.rs do: main gets its arguments by position, matched to the
// parameter names (the runtime has stripped the types, so main.toString() names
// them), a Date parameter a Date (its type read from the script's source); the
// result is JSON.stringify(result ?? null) with undefined made null and BigInt its
// decimal string; a thrown error is {name, message, stack}.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inspect } from "node:util";
import { send, StepApiError } from "../sdk/windmill-client/api.ts";

const SCRIPT = "main.ts";
const ARGS = "args.json";
// main, or the function this file names (a flow's preprocessor).
const ENTRYPOINT = existsSync("entrypoint") ? readFileSync("entrypoint", "utf8").trim() : "main";
const WRAPPER = fileURLToPath(import.meta.url);
const DENO = "Deno" in globalThis;
// Windmill's name for the runtime in an exit-code error, and how much of the log that error quotes.
const PROGRAM = DENO ? "deno run" : "bun run";
const LOG_TAIL = 600;

// Hand the outcome document to the step API; a result too large to send becomes the step's error.
async function report(document: string): Promise<void> {
  try {
    await send("POST", "report", document);
  } catch (refusal) {
    if (!(refusal instanceof StepApiError) || refusal.status !== 413) throw refusal;
    await send("POST", "report", failure("ResultError", `the result could not be reported: ${refusal.message}`));
  }
}

function failure(name: string, message: string, stack = "", exitCode?: number): string {
  return JSON.stringify({ ok: false, error: { name, message, stack, exit_code: exitCode } });
}

type Thrown = { name?: unknown; message?: unknown; stack?: unknown; errors?: unknown; position?: Position };
type Position = { file: string; line: number; column: number };

// The error main() threw, as Windmill reports it: name, message, stack (less the
// wrapper's own frames). Bun's wrapper prints it first. Something thrown that is
// not an object has no name: it is an Error with the thrown value as its message.
function thrown(error: unknown): string {
  // In a pod the log is where `kubectl logs` finds it, deno or not.
  if (!DENO || process.env.MILLRACE_EXIT_ON_FAILURE) console.error(error);
  if (typeof error !== "object" || error === null) return failure("Error", String(error));
  const { name, message, stack } = error as Thrown;
  const frames = String(stack ?? "").split("\n").filter((line) => !line.includes(WRAPPER));
  return failure(String(name ?? "Error"), String(message ?? error), frames.join("\n"));
}

// A script that does not load (does not build, throws at its top level, or, in
// deno, has no main to import) ends Windmill's wrapper before its try: the step
// fails with the runtime's exit code and the end of its log, where the runtime
// printed the error. Bun reports a build failure as a build message, or an
// AggregateError of them, with positions: those are printed too.
function loadFailure(error: unknown): string {
  const inner = typeof error === "object" && error !== null ? (error as Thrown).errors : undefined;
  const details = (Array.isArray(inner) ? inner : []).map((each: Thrown) => `\n${each.message}${at(each)}`);
  const text = inspect(error) + at(error as Thrown) + details.join("");
  console.error(text);
  return failure("ExecutionErr", `exit code for "${PROGRAM}": 1, last log lines:\n${text.slice(-LOG_TAIL).trim()}`, "", 1);
}

function at(thrown: Thrown | null | undefined): string {
  const position = thrown?.position;
  return position ? ` (${position.file}:${position.line}:${position.column})` : "";
}

// What Windmill stores: undefined anywhere becomes null, never dropped; BigInt has
// its toJSON (set by runStep). What JSON.stringify refuses (a cycle) throws, as
// in Windmill's wrapper: the step fails with that error.
function success(result: unknown): string {
  const text = JSON.stringify(result ?? null, (_, value) => (value === undefined ? null : value));
  // A function or a symbol has no JSON text at all.
  return text === undefined ? failure("ResultError", `result is not JSON: a ${typeof result}`) : `{"ok":true,"result":${text}}`;
}

type Parameter = { name: string | undefined; type: string };

// The parameters of the function whose source starts `text`, in order: the name
// (undefined for a destructured one, which has no name to match) and the type
// written for it, spaces removed ("" in plain JavaScript). Rest parameters are left out.
function parameters(text: string): Parameter[] {
  const found: Parameter[] = [];
  let depth = 0;
  let quote = "";
  let name = "";
  let type = "";
  let part: "name" | "type" | "default" = "name";
  const finish = () => {
    const written = name.trim().replace(/\?$/, "");
    if (written && !written.startsWith("...")) {
      found.push({ name: /^[{[]/.test(written) ? undefined : written, type: type.replace(/\s/g, "") });
    }
    [name, type, part] = ["", "", "name"];
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
    const arrow = (c === "=" && text[i + 1] === ">") || (c === ">" && text[i - 1] === "=");
    if (c === "'" || c === '"' || c === "`") quote = c;
    else if ("([{".includes(c) || (c === "<" && part === "type")) depth++;
    else if (")]}".includes(c) && depth === 0) break;
    else if (")]}".includes(c) || (c === ">" && part === "type" && !arrow)) depth--;
    else if (c === "," && depth === 0) {
      finish();
      continue;
    } else if (c === ":" && depth === 0 && part === "name") {
      part = "type";
      continue;
    } else if (c === "=" && depth === 0 && !arrow) part = "default";
    if (part === "name") name += c;
    else if (part === "type") type += c;
  }
  finish();
  return found;
}

// The names main() takes its arguments by, from its own source (types already stripped).
function parameterNames(source: string): Array<string | undefined> {
  const text = source.replace(/^\s*async\b/, "").trimStart();
  const bare = /^([\w$]+)\s*=>/.exec(text);
  return bare ? [bare[1]] : parameters(text).map((parameter) => parameter.name);
}

// Windmill's parser (windmill-parser-ts) reads `Date`, `X.Date`, `Date | undefined`
// or `Date | null` as a datetime; its wrappers then make the argument a Date.
function isDate(type: string): boolean {
  const choices = type.replace(/^\((.*)\)$/, "$1").split("|");
  const others = choices.filter((choice) => !/^(?:[\w$]+\.)*Date$/.test(choice));
  return choices.length - others.length === 1 && (choices.length === 1 || (choices.length === 2 && /^(undefined|null)$/.test(others[0])));
}

// Arguments of the parameters typed Date of `export function main` in the script's
// source become a Date, or undefined when falsy, as Windmill's wrappers convert them.
function convertDates(source: string, args: Record<string, unknown>): void {
  const declared = new RegExp(`\\bexport\\s+(?:async\\s+)?function\\s+${ENTRYPOINT}\\b`).exec(source);
  for (const { name, type } of declared ? parameters(source.slice(declared.index)) : []) {
    if (name !== undefined && isDate(type)) args[name] = args[name] ? new Date(args[name] as string) : undefined;
  }
}

async function runStep(): Promise<string> {
  const args = JSON.parse(readFileSync(ARGS, "utf8"));
  let main: unknown;
  try {
    main = (await import(pathToFileURL(join(process.cwd(), SCRIPT)).href))[ENTRYPOINT];
  } catch (error) {
    return loadFailure(error);
  }
  if (DENO && main === undefined) {
    // Deno's wrapper imports main by name: a script without one fails to link.
    return loadFailure(new SyntaxError(`The requested module './${SCRIPT}' does not provide an export named '${ENTRYPOINT}'`));
  }
  Object.defineProperty(BigInt.prototype, "toJSON", {
    value: function (this: bigint) { return this.toString(); }, configurable: true, writable: true,
  });
  try {
    convertDates(readFileSync(SCRIPT, "utf8"), args);
    if (typeof main !== "function") throw new Error(`${ENTRYPOINT} function is missing`);
    const positional = parameterNames(main.toString()).map((name) => (name === undefined ? undefined : args[name]));
    return success(await main(...positional));
  } catch (error) {
    return thrown(error);
  }
}

if (import.meta.main) {
  const document = await runStep();
  await report(document);
  const outcome = JSON.parse(document);
  // The error is in the log already (thrown, loadFailure): a pod only has to end failed.
  process.exit(!outcome.ok && process.env.MILLRACE_EXIT_ON_FAILURE ? 1 : 0); // a timer or socket the script left open must not hold the step
}
