// The step API client that the TypeScript wrapper and windmill-client share.
// Only fetch and node:process, which bun and deno both provide: copied, never installed.
// A step finds the API in MILLRACE_API_URL and MILLRACE_TOKEN (scoped to its run and step).
import process from "node:process";

export class StepApiError extends Error {
  constructor(readonly status: number, readonly error: string, message: string) {
    super(`${error}: ${message}`);
    this.name = "StepApiError";
  }
}

// A variable or resource path as a URL path, its slashes kept.
export function quoted(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

const UNAVAILABLE = [502, 503, 504];

// The API may be restarting (an operator upgrade or crash): keep trying for a while
// rather than lose the step's outcome.
async function fetchRetrying(url: string, init: RequestInit): Promise<Response> {
  const deadline = Date.now() + 1000 * Number(process.env.MILLRACE_API_RETRY_S ?? "120");
  let pause = 200;
  for (;;) {
    try {
      const response = await fetch(url, init);
      if (!UNAVAILABLE.includes(response.status) || Date.now() > deadline) return response;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 5000);
  }
}

// Call /v1/<endpoint> with a JSON body already encoded; the answer's JSON document.
export async function send(method: "GET" | "PUT" | "POST", endpoint: string, text?: string): Promise<any> {
  const url = process.env.MILLRACE_API_URL;
  const token = process.env.MILLRACE_TOKEN;
  if (!url || !token) {
    throw new StepApiError(0, "NoStepApi", "MILLRACE_API_URL and MILLRACE_TOKEN are not set: not inside a millrace step");
  }
  const response = await fetchRetrying(`${url}/v1/${endpoint}`, {
    method,
    // MILLRACE_POD: the step's own pod, whose log the step API keeps the end of with a report.
    headers: {
      Authorization: `Bearer ${token}`,
      "Content-Type": "application/json",
      ...(process.env.MILLRACE_POD ? { "X-Millrace-Pod": process.env.MILLRACE_POD } : {}),
    },
    body: text,
  });
  const answer = await response.text();
  let document: any;
  try {
    document = JSON.parse(answer || "{}");
  } catch {
    // Not the step API's answer (a proxy's error page, a cut connection): say what came back.
    throw new StepApiError(response.status, "HTTPError", `${response.statusText}: not JSON: ${answer.slice(0, 200)}`);
  }
  if (!response.ok) throw new StepApiError(response.status, document.error ?? "HTTPError", document.message ?? response.statusText);
  return document;
}

// Call /v1/<endpoint> with `body` as JSON (none when undefined).
export function call(method: "GET" | "PUT" | "POST", endpoint: string, body?: unknown): Promise<any> {
  return send(method, endpoint, body === undefined ? undefined : JSON.stringify(body));
}
