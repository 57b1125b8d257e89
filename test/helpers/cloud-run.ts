import nock from "nock";

export const CLOUD_RUN_ENDPOINT = "http://127.0.0.1:9911";

export interface RunJobCall {
  job: string;
  body: { overrides?: { containerOverrides?: Array<{ env?: Array<{ name: string; value: string }> }>; taskCount?: number } };
}

/** The Cloud Run Admin API v2 in REST mode, as @google-cloud/run sends it with `fallback: true`. */
export function mockCloudRun() {
  const scope = nock(CLOUD_RUN_ENDPOINT);
  const runJobCalls: RunJobCall[] = [];
  const cancelled: string[] = [];
  let nextExecution = 1;

  const api = {
    scope,
    runJobCalls,
    cancelled,
    runsJob(times = 1) {
      scope
        .post(/^\/v2\/projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/:]+:run/)
        .times(times)
        .reply(200, (uri: string, body: unknown) => {
          const job = resourceOf(uri, ":run");
          runJobCalls.push({ job, body: (typeof body === "string" ? JSON.parse(body) : body) as RunJobCall["body"] });
          const execution = `${job}/executions/${job.split("/").pop()}-${String(nextExecution++).padStart(5, "0")}`;
          return {
            name: `${job.split("/jobs/")[0]}/operations/op-${nextExecution}`,
            metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Execution", name: execution },
          };
        });
      return api;
    },
    failsRunJob(httpStatus: number, status: string, message = "failure") {
      scope.post(/:run/).reply(httpStatus, { error: { code: httpStatus, message, status } });
      return api;
    },
    cancelsExecution(times = 1) {
      scope
        .post(/\/executions\/[^/:]+:cancel/)
        .times(times)
        .reply(200, (uri: string) => {
          const name = resourceOf(uri, ":cancel");
          cancelled.push(name);
          return { name: "op-cancel", metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Execution", name } };
        });
      return api;
    },
    hasExecution(name: string, status: { runningCount?: number; failedCount?: number; succeededCount?: number; cancelledCount?: number; completionTime?: string }) {
      scope.get(`/v2/${name}`).query(true).reply(200, { name, ...status });
      return api;
    },
    done() {
      scope.done();
    },
  };
  return api;
}

/** `/v2/projects/p/locations/l/jobs/j:run?$alt=json` → `projects/p/locations/l/jobs/j` */
function resourceOf(uri: string, verb: string): string {
  return decodeURIComponent(uri.split("?")[0]!).replace(/^\/v2\//, "").replace(new RegExp(`${verb}$`), "");
}
