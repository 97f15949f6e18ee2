// `import * as wmill from "windmill-client"` inside a millrace step: Windmill's client
// functions, served by the step API. States, variables and resources go through the
// API; shared state is a file in the flow's shared directory (./shared), as in Windmill.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { call, quoted, StepApiError } from "./api.ts";

export { StepApiError };

const SHARED = "shared";

function required(path: string | undefined, what: string): string {
  if (!path) throw new StepApiError(0, "Invalid", `${what} needs a path`);
  return path;
}

// This step's state, kept across runs of the flow (undefined before the first setState).
export async function getState(): Promise<any> {
  return (await call("GET", "state")).value ?? undefined;
}

export async function setState(state: any): Promise<void> {
  await call("PUT", "state", { value: state ?? null });
}

export async function getVariable(path: string): Promise<string> {
  return (await call("GET", `variables/${quoted(path)}`)).value;
}

export async function setVariable(path: string, value: string, isSecretIfNotExist = false, descriptionIfNotExist = ""): Promise<void> {
  await call("PUT", `variables/${quoted(path)}`, { value, is_secret: isSecretIfNotExist, description: descriptionIfNotExist });
}

export async function getResource(path?: string, undefinedIfEmpty = false): Promise<any> {
  try {
    return (await call("GET", `resources/${quoted(required(path, "getResource"))}`)).value;
  } catch (error) {
    if (undefinedIfEmpty && error instanceof StepApiError && error.status === 404) return undefined;
    throw error;
  }
}

export async function setResource(value: any, path?: string, initializeToTypeIfNotExist = "any"): Promise<void> {
  await call("PUT", `resources/${quoted(required(path, "setResource"))}`, { value, resource_type: initializeToTypeIfNotExist });
}

// A value the run keeps for its later steps; it ends with the run.
export async function setFlowUserState(key: string, value: any): Promise<void> {
  await call("PUT", `flow_user_state/${quoted(key)}`, { value: value ?? null });
}

export async function getFlowUserState(key: string): Promise<any> {
  return (await call("GET", `flow_user_state/${quoted(key)}`)).value ?? undefined;
}

// Signed links for the run's approval step.
export async function getResumeUrls(approver?: string): Promise<{ approvalPage: string; resume: string; cancel: string }> {
  const query = approver === undefined ? "" : `?approver=${encodeURIComponent(approver)}`;
  return await call("GET", `resume_urls${query}`);
}

export async function setSharedState(state: any, path = "state.json"): Promise<void> {
  writeFileSync(join(SHARED, path), JSON.stringify(state));
}

export async function getSharedState(path = "state.json"): Promise<any> {
  return JSON.parse(readFileSync(join(SHARED, path), "utf8"));
}
