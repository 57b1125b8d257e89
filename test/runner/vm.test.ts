// The Compute Engine backend's VM side and its deployment, checked without a Google Cloud project:
// - shellcheck on runner/vm/*.sh and deploy/deploy.sh;
// - runner/vm/startup.sh in a sandbox: a local stand-in for the metadata server, a fake run.sh,
//   PATH shims for poweroff, runuser and systemctl;
// - deploy/deploy.sh with a gcloud shim that records every call, then every recorded call given
//   to gcloud's own command-line parser (the installed SDK, without an account): a call that parses
//   stops at "You do not currently have an active account selected", one that does not fails first.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = process.cwd();
const SANDBOX = mkdtempSync(join(tmpdir(), "kumo-vm-test-"));
afterAll(() => rmSync(SANDBOX, { recursive: true, force: true }));

const has = (command: string, arg: string): boolean => spawnSync(command, [arg], { stdio: "ignore" }).status === 0;
const HAVE_SHELLCHECK = has("shellcheck", "--version");
const HAVE_GCLOUD = has("gcloud", "--version");

function writeExecutable(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

const VM_SCRIPTS = readdirSync(join(ROOT, "runner/vm"))
  .filter((name) => name.endsWith(".sh"))
  .map((name) => `runner/vm/${name}`);

describe("shellcheck", () => {
  test("runner/vm has the startup, install and bake scripts", () => {
    expect(VM_SCRIPTS.sort()).toEqual(["runner/vm/bake-image.sh", "runner/vm/install.sh", "runner/vm/startup.sh"]);
  });

  const check = HAVE_SHELLCHECK ? test : test.skip;
  const skipped = HAVE_SHELLCHECK ? "" : " (SKIPPED: shellcheck is not installed)";
  check.each([...VM_SCRIPTS, "deploy/deploy.sh", "deploy/lib.sh"])(`%s passes shellcheck${skipped}`, (file) => {
    const result = spawnSync("shellcheck", ["--external-sources", file], { cwd: ROOT, encoding: "utf8" });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// runner/vm/startup.sh
// ---------------------------------------------------------------------------------------------

interface MetadataRequest {
  url: string;
  headers: IncomingHttpHeaders;
}

/** A stand-in for the metadata server: answers kumo-jit-config when given, 404 otherwise, and
 * 403 without `Metadata-Flavor: Google`, as the real one does. */
class FakeMetadataServer {
  readonly requests: MetadataRequest[] = [];
  jitConfig: string | undefined;
  private server: Server | undefined;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.requests.push({ url: req.url ?? "", headers: req.headers });
      if (req.headers["metadata-flavor"] !== "Google") {
        res.writeHead(403).end("Missing Metadata-Flavor:Google header.");
      } else if (req.url === "/computeMetadata/v1/instance/attributes/kumo-jit-config" && this.jitConfig !== undefined) {
        res.writeHead(200, { "Content-Type": "application/text", "Metadata-Flavor": "Google" }).end(this.jitConfig);
      } else {
        res.writeHead(404).end("Not Found");
      }
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/computeMetadata/v1`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

interface StartupRun {
  code: number | null;
  output: string;
  events: string[];
  runnerEnv: Record<string, string>;
  runnerArgs: string;
}

describe("runner/vm/startup.sh", () => {
  const metadata = new FakeMetadataServer();
  let metadataUrl = "";
  // Base64-like, as GitHub's encoded_jit_config: a value that would be easy to spot in a log.
  const JIT = "eyJrdW1vIjoiaml0In0" + "Q2xhc3NpZmllZEppdENvbmZpZw".repeat(8) + "==";

  beforeAll(async () => {
    metadataUrl = await metadata.start();
  });
  afterAll(() => metadata.stop());

  /** Runs the startup script in a fresh sandbox; `runner` is the body of the fake run.sh, or null
   * for an image without a runner. */
  async function runStartup(runner: string | null): Promise<StartupRun> {
    const dir = mkdtempSync(join(SANDBOX, "startup-"));
    const bin = join(dir, "bin");
    const runnerDir = join(dir, "runner");
    const events = join(dir, "events");
    mkdirSync(bin);
    mkdirSync(runnerDir);
    writeFileSync(events, "");
    // PATH shims: each records itself; runuser runs its command (after --) as this user.
    writeExecutable(join(bin, "poweroff"), `#!/bin/sh\necho poweroff >>"${events}"\n`);
    writeExecutable(join(bin, "systemctl"), `#!/bin/sh\necho "systemctl $*" >>"${events}"\n`);
    writeExecutable(
      join(bin, "runuser"),
      `#!/bin/sh\necho "runuser $1 $2" >>"${events}"\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n`,
    );
    if (runner !== null) {
      writeExecutable(
        join(runnerDir, "run.sh"),
        `#!/bin/sh\necho run.sh >>"${events}"\nenv >"${dir}/runner-env"\nprintf '%s' "$*" >"${dir}/runner-args"\n${runner}\n`,
      );
    }
    const child = spawn("bash", [join(ROOT, "runner/vm/startup.sh")], {
      cwd: dir,
      env: {
        PATH: `${bin}:/usr/bin:/bin`,
        HOME: dir,
        KUMO_METADATA_URL: metadataUrl,
        KUMO_RUNNER_DIR: runnerDir,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    const runnerEnv: Record<string, string> = {};
    if (existsSync(join(dir, "runner-env"))) {
      for (const line of readFileSync(join(dir, "runner-env"), "utf8").split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) runnerEnv[line.slice(0, eq)] = line.slice(eq + 1);
      }
    }
    const argsFile = join(dir, "runner-args");
    return {
      code,
      output,
      events: readFileSync(events, "utf8").split("\n").filter(Boolean),
      runnerEnv,
      runnerArgs: existsSync(argsFile) ? readFileSync(argsFile, "utf8") : "",
    };
  }

  test("reads kumo-jit-config, gives it to the runner without printing it, then powers off", async () => {
    metadata.jitConfig = JIT;
    metadata.requests.length = 0;
    const run = await runStartup("exit 0");

    expect(metadata.requests.map((r) => r.url)).toEqual(["/computeMetadata/v1/instance/attributes/kumo-jit-config"]);
    expect(metadata.requests[0]?.headers["metadata-flavor"]).toBe("Google");
    // The runner got the config in its environment, not on its command line, as user runner.
    expect(run.runnerEnv.ACTIONS_RUNNER_INPUT_JITCONFIG).toBe(JIT);
    expect(run.runnerArgs).toBe("");
    expect(run.runnerEnv.RUNNER_MANUALLY_TRAP_SIG).toBe("1");
    expect(run.runnerEnv.ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE).toBe("1");
    expect(run.events).toEqual(["systemctl start docker.service", "runuser -u runner", "run.sh", "poweroff"]);
    // Never in the script's output (serial console, journal), not even a piece of it.
    expect(run.output).not.toContain(JIT.slice(20, 40));
    expect(run.output).toContain("powering off");
    expect(run.code).toBe(0);
  });

  test("powers off without starting the runner when the key is missing", async () => {
    metadata.jitConfig = undefined;
    const run = await runStartup("exit 0");
    expect(run.events).toEqual(["poweroff"]);
    expect(run.output).toContain("no usable metadata item kumo-jit-config");
    expect(run.code).not.toBe(0);
  });

  test("powers off without starting the runner when the key is empty", async () => {
    metadata.jitConfig = "";
    const run = await runStartup("exit 0");
    expect(run.events).toEqual(["poweroff"]);
    expect(run.code).not.toBe(0);
  });

  test("powers off when the runner fails, and passes its exit code on", async () => {
    metadata.jitConfig = JIT;
    const run = await runStartup("exit 3");
    expect(run.events).toEqual(["systemctl start docker.service", "runuser -u runner", "run.sh", "poweroff"]);
    expect(run.output).toContain("the runner exited 3");
    expect(run.code).toBe(3);
  });

  test("powers off when the image has no runner", async () => {
    metadata.jitConfig = JIT;
    const run = await runStartup(null);
    expect(run.events).toEqual(["systemctl start docker.service", "poweroff"]);
    expect(run.output).toContain("no runner at");
    expect(run.output).not.toContain(JIT.slice(20, 40));
    expect(run.code).not.toBe(0);
  });

  test("is wired into the instance template by deploy.sh as its startup script", () => {
    const deploy = readFileSync(join(ROOT, "deploy/deploy.sh"), "utf8");
    expect(deploy).toContain("--metadata-from-file=startup-script=runner/vm/startup.sh");
  });
});

// ---------------------------------------------------------------------------------------------
// deploy/deploy.sh with a recording gcloud shim
// ---------------------------------------------------------------------------------------------

// Records each call (arguments NUL-separated, one file per call), keeps a copy of the temp files
// deploy.sh names in them (it deletes its work directory at exit), and answers as an empty
// project (SHIM_MODE=fresh: every look-up fails) or one where everything exists (existing).
const GCLOUD_SHIM = `#!/usr/bin/env bash
set -u
n=$(cat "$SHIM_DIR/count" 2>/dev/null || echo 0)
echo $((n + 1)) >"$SHIM_DIR/count"
printf '%s\\0' "$@" >"$SHIM_DIR/call-$(printf %04d "$n")"
if [[ -d $TMPDIR ]]; then cp -a "$TMPDIR/." "$SHIM_DIR/keep/" 2>/dev/null; fi
args=" $* "
case $args in *" get-guest-attributes "*) echo ok; exit 0 ;; esac
if [[ $SHIM_MODE == existing ]]; then
  case $args in *" instance-templates describe "*"--format=value(description)"*) echo "an older template" ;; esac
  exit 0
fi
for a in "$@"; do case $a in describe | list | access) exit 1 ;; esac; done
exit 0
`;

interface DeployRun {
  status: number | null;
  output: string;
  calls: string[][];
  tmp: string;
}

function deploy(mode: "fresh" | "existing", env: Record<string, string>): DeployRun {
  const dir = mkdtempSync(join(SANDBOX, `deploy-${mode}-`));
  const bin = join(dir, "bin");
  const shim = join(dir, "calls");
  const tmp = join(dir, "tmp");
  for (const d of [bin, shim, join(shim, "keep"), tmp]) mkdirSync(d, { recursive: true });
  writeExecutable(join(bin, "gcloud"), GCLOUD_SHIM);
  const result = spawnSync("bash", ["deploy/deploy.sh"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
    env: {
      PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      HOME: dir,
      TMPDIR: tmp,
      SHIM_DIR: shim,
      SHIM_MODE: mode,
      PROJECT_ID: "kumo-test",
      APP_ID: "12345",
      PRIVATE_KEY: "-----BEGIN RSA PRIVATE KEY-----\\nnot-a-key\\n-----END RSA PRIVATE KEY-----",
      WEBHOOK_SECRET: "not-a-secret",
      DOTENV_FILE: join(dir, "no.env"),
      IMAGE_TAG: "test",
      BAKE_POLL_SECONDS: "0",
      ...env,
    },
  });
  // Put back the files deploy.sh removed, at their paths, for the parser check.
  cpSync(join(shim, "keep"), tmp, { recursive: true });
  const calls = readdirSync(shim)
    .filter((name) => name.startsWith("call-"))
    .sort()
    .map((name) => readFileSync(join(shim, name), "utf8").split("\0").slice(0, -1));
  return { status: result.status, output: result.stdout + result.stderr, calls, tmp };
}

// Runs commands through gcloud's own CLI (loaded once, one forked child per command, four at a
// time) with an empty configuration: no account, no credentials, no network.
const PARSE_CHECK = `
import json, os, sys
sdk = sys.argv[1]
sys.path[0:0] = [os.path.join(sdk, 'lib', 'third_party'), os.path.join(sdk, 'lib')]
from googlecloudsdk import gcloud_main
cli = gcloud_main.CreateCLI([])
commands = json.load(sys.stdin)
results = [None] * len(commands)
running = {}

def start(i):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        code = 0
        try:
            cli.Execute(commands[i])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:
            sys.stderr.write('crash: %r\\n' % (e,))
            code = 3
        sys.stderr.flush()
        os._exit(code)
    os.close(w)
    running[pid] = (i, r)

def finish():
    pid, status = os.wait()
    i, r = running.pop(pid)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    results[i] = {'code': os.waitstatus_to_exitcode(status), 'stderr': b''.join(chunks).decode('utf8', 'replace')}

for i in range(len(commands)):
    while len(running) >= 4:
        finish()
    start(i)
while running:
    finish()
json.dump(results, sys.stdout)
`;

interface ParseResult {
  code: number;
  stderr: string;
}

let sdk: { root: string; python: string } | undefined;

function gcloudParse(commands: string[][]): ParseResult[] {
  sdk ??= (() => {
    const info = spawnSync("gcloud", ["info", "--format=value(installation.sdk_root,basic.python_location)"], {
      encoding: "utf8",
      env: { ...process.env, CLOUDSDK_CONFIG: join(SANDBOX, "gcloud-config") },
    });
    const [root = "", python = "python3"] = info.stdout.trim().split("\t");
    return { root, python };
  })();
  const config = mkdtempSync(join(SANDBOX, "gcloud-config-"));
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // Nothing that could give gcloud credentials or an account.
    if (/^(CLOUDSDK_|GOOGLE_|GCLOUD_)/.test(key)) continue;
    env[key] = value;
  }
  Object.assign(env, {
    CLOUDSDK_CONFIG: config,
    CLOUDSDK_CORE_CHECK_GCE_METADATA: "false",
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: "true",
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: "true",
    CLOUDSDK_CORE_DISABLE_PROMPTS: "1",
    // Should anything try the network anyway, it goes nowhere.
    HTTPS_PROXY: "http://127.0.0.1:9",
    HTTP_PROXY: "http://127.0.0.1:9",
    NO_PROXY: "",
  });
  const result = spawnSync(sdk.python, ["-c", PARSE_CHECK, sdk.root], {
    cwd: ROOT,
    env,
    input: JSON.stringify(commands),
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    timeout: 240_000,
  });
  if (result.status !== 0) throw new Error(`gcloud parse check failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as ParseResult[];
}

const NO_ACCOUNT = "You do not currently have an active account selected";

/** Every call that gcloud's parser does not accept, with what it said. */
function rejected(calls: string[][]): string[] {
  const unique = [...new Map(calls.map((c) => [JSON.stringify(c), c])).values()];
  const results = gcloudParse(unique);
  return unique.flatMap((call, i) => {
    const r = results[i];
    return r && r.stderr.includes(NO_ACCOUNT) ? [] : [`gcloud ${call.join(" ")}\n  → ${r?.code}: ${r?.stderr.trim()}`];
  });
}

const find = (calls: string[][], ...words: string[]): string[][] =>
  calls.filter((call) => words.every((w) => call.includes(w)));
const flag = (call: string[] | undefined, name: string): string | undefined =>
  call?.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);

const parserTest = HAVE_GCLOUD ? test : test.skip;

describe("deploy/deploy.sh", () => {
  test("KUMO_VM_RUNNERS off (the default): no Compute Engine call at all", () => {
    const run = deploy("fresh", {});
    expect(run.status).toBe(0);
    expect(run.calls.length).toBeGreaterThan(20);
    expect(run.calls.filter((call) => call.includes("compute"))).toEqual([]);
    expect(run.calls.flat().filter((a) => /compute\.googleapis\.com|kumo-runner-vm|instanceAdmin/.test(a))).toEqual([]);
    expect(run.output).toContain("runner VMs:   off");
    expect(flag(find(run.calls, "run", "deploy")[0], "--set-env-vars")).not.toContain("KUMO_COMPUTE_ENGINE");
  });

  test("refuses a KUMO_VM_RUNNERS that is neither true nor false", () => {
    const run = deploy("fresh", { KUMO_VM_RUNNERS: "yes" });
    expect(run.status).not.toBe(0);
    expect(run.output).toContain("KUMO_VM_RUNNERS must be true or false");
    expect(run.calls).toEqual([]);
  });

  describe("KUMO_VM_RUNNERS=true in an empty project, VMs without external IPs", () => {
    let run: DeployRun;
    beforeAll(() => {
      run = deploy("fresh", { KUMO_VM_RUNNERS: "true", VM_EXTERNAL_IP: "false" });
    }, 180_000);

    test("finishes", () => {
      expect(run.output).toContain("==> Done");
      expect(run.status).toBe(0);
    });

    test("enables the Compute Engine API and creates the VM account with no role", () => {
      expect(find(run.calls, "services", "enable")[0]).toContain("compute.googleapis.com");
      expect(find(run.calls, "service-accounts", "create", "kumo-runner-vm")).toHaveLength(1);
      const service = find(run.calls, "run", "deploy")[0];
      expect(flag(service, "--set-env-vars")?.split(",")).toContain("KUMO_COMPUTE_ENGINE=true");
      // The VM account is never given a role: it appears in a binding only as the resource the
      // app may act as.
      const bindings = run.calls.filter((c) => c.includes("add-iam-policy-binding"));
      expect(bindings.filter((c) => c.some((a) => a === "--member=serviceAccount:kumo-runner-vm@kumo-test.iam.gserviceaccount.com"))).toEqual([]);
    });

    test("bakes the image: builder from debian-12 with install.sh, image of its disk in the family, builder deleted", () => {
      const sequence = run.calls
        .filter((c) => c.includes("compute") && (c.includes("instances") || c.includes("images")))
        .map((c) => c.slice(2, 6).join(" "));
      expect(sequence).toEqual([
        expect.stringMatching(/^compute images describe kumo-runner-\d+-\d+-\d+-[0-9a-f]{8}$/),
        expect.stringMatching(/^compute instances describe kumo-bake-/),
        expect.stringMatching(/^compute instances create kumo-bake-/),
        expect.stringMatching(/^compute instances get-guest-attributes kumo-bake-/),
        expect.stringMatching(/^compute instances stop kumo-bake-/),
        expect.stringMatching(/^compute images create kumo-runner-\d+-\d+-\d+-[0-9a-f]{8}$/),
        expect.stringMatching(/^compute instances delete kumo-bake-/),
      ]);
      const builder = find(run.calls, "instances", "create")[0];
      expect(flag(builder, "--image-family")).toBe("debian-12");
      expect(flag(builder, "--image-project")).toBe("debian-cloud");
      expect(flag(builder, "--metadata-from-file")).toBe("startup-script=runner/vm/install.sh");
      const version = /actions-runner:(\d+\.\d+\.\d+)/.exec(readFileSync(join(ROOT, "runner/Dockerfile"), "utf8"))?.[1];
      expect(flag(builder, "--metadata")).toContain(`kumo-runner-version=${version}`);
      expect(builder).toContain("--no-service-account");
      expect(flag(find(run.calls, "images", "create")[0], "--family")).toBe("kumo-runner");
    });

    test("creates the instance template the app inserts VMs from", () => {
      const template = find(run.calls, "instance-templates", "create")[0];
      expect(template?.[5]).toBe("kumo-runner-docker");
      expect(flag(template, "--machine-type")).toBe("e2-standard-4");
      expect(flag(template, "--image-family")).toBe("kumo-runner");
      expect(flag(template, "--image-project")).toBe("kumo-test");
      expect(flag(template, "--service-account")).toBe("kumo-runner-vm@kumo-test.iam.gserviceaccount.com");
      expect(template).toContain("--no-scopes");
      expect(flag(template, "--metadata-from-file")).toBe("startup-script=runner/vm/startup.sh");
      expect(flag(template, "--max-run-duration")).toBe("6h");
      expect(flag(template, "--instance-termination-action")).toBe("DELETE");
      expect(flag(template, "--labels")).toBe("kumo-runner=kumo");
      expect(flag(template, "--tags")).toBe("kumo-runner");
      // Nothing of the JIT config: the app adds it per VM.
      expect(template?.join(" ")).not.toMatch(/jit/i);
    });

    test("denies all ingress to the runner VMs", () => {
      const rule = find(run.calls, "firewall-rules", "create")[0];
      expect(flag(rule, "--action")).toBe("DENY");
      expect(flag(rule, "--direction")).toBe("INGRESS");
      expect(flag(rule, "--source-ranges")).toBe("0.0.0.0/0");
      expect(flag(rule, "--target-tags")).toBe("kumo-runner");
    });

    test("gives the VMs and the builder no external IP, and egress through Cloud NAT", () => {
      expect(find(run.calls, "instance-templates", "create")[0]).toContain("--no-address");
      expect(find(run.calls, "instances", "create")[0]).toContain("--no-address");
      const router = find(run.calls, "routers", "create")[0];
      expect(router?.slice(2, 6)).toEqual(["compute", "routers", "create", "kumo-router"]);
      const nat = find(run.calls, "nats", "create")[0];
      expect(nat).toContain("--auto-allocate-nat-external-ips");
      expect(nat).toContain("--nat-all-subnet-ip-ranges");
    });

    test("lets the app create and delete only instances and disks named kumo-…", () => {
      const admin = find(run.calls, "add-iam-policy-binding", "--role=roles/compute.instanceAdmin.v1");
      expect(admin).toHaveLength(1);
      const condition = flag(admin[0], "--condition") ?? "";
      expect(condition).toContain('resource.name.extract("/instances/{name}").startsWith("kumo-")');
      expect(condition).toContain('resource.name.extract("/disks/{name}").startsWith("kumo-")');
      expect(condition).not.toMatch(/resource\.type\s*!=/);
      const reader = find(run.calls, "--role=projects/kumo-test/roles/kumoRunnerVmLauncher")[0];
      expect(reader).toContain("--condition=None");
      const role = find(run.calls, "iam", "roles", "create")[0];
      expect(flag(role, "--permissions")?.split(",").every((p) => /\.(list|get|getFromFamily|useReadOnly)$/.test(p))).toBe(true);
      const actAs = find(run.calls, "service-accounts", "add-iam-policy-binding", "kumo-runner-vm@kumo-test.iam.gserviceaccount.com");
      expect(flag(actAs[0], "--role")).toBe("roles/iam.serviceAccountUser");
      expect(flag(actAs[0], "--member")).toBe("serviceAccount:kumo-app@kumo-test.iam.gserviceaccount.com");
      expect(flag(find(run.calls, "subnets", "add-iam-policy-binding")[0], "--role")).toBe("roles/compute.networkUser");
    });

    parserTest(
      "every gcloud call it makes is accepted by gcloud's parser",
      () => {
        expect(rejected(run.calls)).toEqual([]);
      },
      300_000,
    );
  });

  describe("KUMO_VM_RUNNERS=true where everything exists, another prefix", () => {
    let run: DeployRun;
    beforeAll(() => {
      run = deploy("existing", { KUMO_VM_RUNNERS: "true", KUMO_RUNNER_PREFIX: "ci" });
    }, 180_000);

    test("finishes without baking again, and replaces the template that differs", () => {
      expect(run.status).toBe(0);
      expect(find(run.calls, "images", "create")).toEqual([]);
      expect(find(run.calls, "instances", "create")).toEqual([]);
      const templateCalls = run.calls.filter((c) => c.includes("instance-templates")).map((c) => c[4]);
      expect(templateCalls).toEqual(["describe", "describe", "delete", "create"]);
      expect(find(run.calls, "iam", "roles", "update")).toHaveLength(1);
    });

    test("gives the VMs external IPs, no Cloud NAT, and the prefix in the label and the condition", () => {
      const template = find(run.calls, "instance-templates", "create")[0];
      expect(template).not.toContain("--no-address");
      expect(find(run.calls, "routers")).toEqual([]);
      expect(flag(template, "--labels")).toBe("kumo-runner=ci");
      const condition = flag(find(run.calls, "--role=roles/compute.instanceAdmin.v1")[0], "--condition") ?? "";
      expect(condition).toContain('startsWith("ci-")');
    });

    parserTest(
      "every gcloud call it makes is accepted by gcloud's parser",
      () => {
        expect(rejected(run.calls)).toEqual([]);
      },
      300_000,
    );
  });

  test("DRY_RUN with the VM backend prints the plan and calls nothing", () => {
    const run = deploy("fresh", { KUMO_VM_RUNNERS: "true", DRY_RUN: "1" });
    expect(run.status).toBe(0);
    expect(run.calls).toEqual([]);
    expect(run.output).toContain("compute instance-templates create kumo-runner-docker");
  });
});

describe("the parser check itself", () => {
  parserTest(
    "tells a parse error from a valid command",
    () => {
      const results = gcloudParse([
        ["--project=p", "--quiet", "compute", "images", "describe", "x"],
        ["--project=p", "--quiet", "compute", "instance-templates", "create", "t", "--max-run-duration=6x"],
      ]);
      expect(results[0]?.stderr).toContain(NO_ACCOUNT);
      expect(results[1]?.stderr).not.toContain(NO_ACCOUNT);
      expect(results[1]?.code).toBe(2);
    },
    120_000,
  );
});
