import { describe, expect, test } from "@jest/globals";
import { parse as parseYaml } from "yaml";
import { SettingsLoader } from "../../app/settings/load.js";

type Answer = { data: string } | { status: number; message: string };

/** An octokit whose getContent gives the scripted answers in turn (a promise: answered when the test says). */
function fakeOctokit(answers: Array<Answer | Promise<Answer>>) {
  const requests: unknown[] = [];
  const octokit = {
    rest: {
      repos: {
        getContent: async (params: unknown) => {
          requests.push(params);
          const answer = await answers.shift();
          if (!answer) throw new Error("no answer scripted");
          if ("status" in answer) throw Object.assign(new Error(answer.message), { status: answer.status });
          return { data: answer.data };
        },
      },
    },
  };
  return { octokit: octokit as never, requests };
}

const VALID = "runners:\n  - labels: [kumo]\n    job: j\n";

describe("SettingsLoader (injected clock, scripted GitHub)", () => {
  test("reads the org's .github/kumo.yml raw, from the org's .github repository", async () => {
    const { octokit, requests } = fakeOctokit([{ data: VALID }]);
    const settings = await new SettingsLoader(60_000).get(octokit, 1, "octo-org");
    expect(settings).toMatchObject({ ok: true, settings: { runners: [{ labels: ["kumo"], job: "j", group: "Default" }] } });
    expect(requests).toEqual([{ owner: "octo-org", repo: ".github", path: ".github/kumo.yml", mediaType: { format: "raw" } }]);
  });

  test("cached per installation for the TTL: read again at the TTL, not a millisecond before", async () => {
    let now = 1_000;
    const { octokit, requests } = fakeOctokit([{ data: VALID }, { data: "runners: []\n" }, { data: VALID }]);
    const loader = new SettingsLoader(60_000, () => now);
    await loader.get(octokit, 1, "octo-org");
    now += 59_999;
    expect(await loader.get(octokit, 1, "octo-org")).toMatchObject({ ok: true, settings: { runners: [{ job: "j" }] } });
    expect(requests).toHaveLength(1);
    now += 1;
    expect(await loader.get(octokit, 1, "octo-org")).toMatchObject({ ok: true, settings: { runners: [] } });
    expect(requests).toHaveLength(2);
    // Another installation has its own entry.
    await loader.get(octokit, 2, "other-org");
    expect(requests).toHaveLength(3);
  });

  test("invalidate drops the installation's entry", async () => {
    const { octokit, requests } = fakeOctokit([{ data: VALID }, { data: VALID }]);
    const loader = new SettingsLoader(60_000, () => 0);
    await loader.get(octokit, 1, "octo-org");
    loader.invalidate(2);
    await loader.get(octokit, 1, "octo-org");
    expect(requests).toHaveLength(1);
    loader.invalidate(1);
    await loader.get(octokit, 1, "octo-org");
    expect(requests).toHaveLength(2);
  });

  test("a failed read is not cached; a newer read that replaced it stays cached when the old one fails", async () => {
    let failOld!: (answer: Answer) => void;
    const old = new Promise<Answer>((resolve) => (failOld = resolve));
    const { octokit, requests } = fakeOctokit([old, { data: VALID }, { status: 500, message: "Server Error" }, { data: VALID }]);
    const loader = new SettingsLoader(60_000, () => 0);

    const first = loader.get(octokit, 1, "octo-org");
    loader.invalidate(1); // a push arrived meanwhile
    expect(await loader.get(octokit, 1, "octo-org")).toMatchObject({ ok: true });
    failOld({ status: 502, message: "Bad Gateway" });
    await expect(first).rejects.toThrow("Bad Gateway");
    await loader.get(octokit, 1, "octo-org");
    expect(requests).toHaveLength(2);

    loader.invalidate(1);
    await expect(loader.get(octokit, 1, "octo-org")).rejects.toThrow("Server Error");
    expect(await loader.get(octokit, 1, "octo-org")).toMatchObject({ ok: true });
    expect(requests).toHaveLength(4);
  });

  test("no file (404): no runner specs; any other failure is an outage, thrown", async () => {
    const { octokit } = fakeOctokit([{ status: 404, message: "Not Found" }, { status: 403, message: "Resource not accessible by integration" }]);
    expect(await new SettingsLoader(60_000).get(octokit, 1, "octo-org")).toEqual({ ok: true, settings: { runners: [], repositories: {}, explain: true } });
    await expect(new SettingsLoader(60_000).get(octokit, 1, "octo-org")).rejects.toThrow("Resource not accessible by integration");
  });

  test.each([
    ["an empty file", "", { ok: true, settings: { runners: [], repositories: {}, explain: true } }],
    ["a file of comments", "# nothing yet\n", { ok: true, settings: { runners: [] } }],
    ["a plain string", "hello\n", { ok: false, errors: [expect.stringMatching(/^\(file\): /)] }],
    ["a list", "- labels: [kumo]\n", { ok: false, errors: [expect.stringMatching(/^\(file\): /)] }],
  ])("%s is read as settings, never a crash", async (_name, yaml, expected) => {
    const { octokit } = fakeOctokit([{ data: yaml }]);
    expect(await new SettingsLoader(60_000).get(octokit, 1, "octo-org")).toMatchObject(expected);
  });

  test("invalid YAML: its first line, as a settings error", async () => {
    const { octokit } = fakeOctokit([{ data: "runners: [\n  - labels: [kumo\n" }]);
    const parsed = await new SettingsLoader(60_000).get(octokit, 1, "octo-org");
    expect(parsed).toMatchObject({ ok: false, labels: [], explain: true });
    const errors = parsed.ok ? [] : parsed.errors;
    expect(errors).toHaveLength(1);
    // The parser's own first line, whole.
    let firstLine = "";
    try {
      parseYaml("runners: [\n  - labels: [kumo\n");
    } catch (error) {
      firstLine = (error as Error).message.split("\n")[0]!;
    }
    expect(firstLine.length).toBeGreaterThan(10);
    expect(errors[0]).toBe(`(file): invalid YAML: ${firstLine}`);
  });

  test("_extends names the org's own file in the error", async () => {
    const { octokit } = fakeOctokit([{ data: "_extends: other\n" }]);
    expect(await new SettingsLoader(60_000).get(octokit, 1, "acme")).toEqual({
      ok: false,
      errors: ["_extends: not supported; Kumo reads its settings only from acme/.github/.github/kumo.yml"],
      labels: [],
      explain: true,
    });
  });
});
