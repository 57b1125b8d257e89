import { describe, expect, test } from "@jest/globals";
import type { KumoDeps } from "../../app/deps.js";
import { settingsPush } from "../../app/handlers/settings-push.js";

/** The caches a push may drop, recording what was dropped, and a context around a push payload. */
function run(payload: Record<string, unknown>) {
  const dropped: string[] = [];
  const lines: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const deps = {
    settings: { invalidate: (id: number) => dropped.push(`settings ${id}`) },
    groups: { invalidate: (org: string) => dropped.push(`groups ${org}`) },
  } as unknown as KumoDeps;
  const context = { id: "delivery-1", payload, log: { info: (fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg }) } };
  return settingsPush(deps)(context as never).then(() => ({ dropped, lines }));
}

const commit = (files: { added?: string[]; modified?: string[]; removed?: string[] }) => ({ id: "c", added: [], modified: [], removed: [], ...files });
function push(commits: unknown[], overrides: Record<string, unknown> = {}) {
  return {
    ref: "refs/heads/main",
    installation: { id: 4242 },
    organization: { login: "octo-org" },
    repository: { name: ".github", default_branch: "main", owner: { login: "octo-org" } },
    commits,
    ...overrides,
  };
}

describe("a push to the org's .github repository", () => {
  test.each([
    ["added", commit({ added: [".github/kumo.yml"] })],
    ["modified", commit({ modified: [".github/kumo.yml"] })],
    ["removed", commit({ removed: [".github/kumo.yml"] })],
  ])("kumo.yml %s on the default branch: settings and groups dropped, one line logged", async (_how, touching) => {
    const { dropped, lines } = await run(push([commit({ modified: ["README.md"] }), touching]));
    expect(dropped).toEqual(["settings 4242", "groups octo-org"]);
    expect(lines).toEqual([{ fields: { org: "octo-org", deliveryId: "delivery-1" }, msg: "kumo.yml changed: settings reloaded on next job" }]);
  });

  test("commits that do not touch it keep the caches", async () => {
    const commits = Array.from({ length: 2047 }, () => commit({ modified: ["README.md", "kumo.yml", ".github/other.yml"] }));
    expect((await run(push(commits))).dropped).toEqual([]);
    expect((await run(push(commits.slice(0, 1)))).dropped).toEqual([]);
  });

  test("GitHub lists no commit (a reset or a force push) or its maximum of 2048: unsure, so dropped", async () => {
    expect((await run(push([]))).dropped).toEqual(["settings 4242", "groups octo-org"]);
    const many = Array.from({ length: 2048 }, () => commit({ modified: ["README.md"] }));
    expect((await run(push(many))).dropped).toEqual(["settings 4242", "groups octo-org"]);
  });

  test("commits listing no files at all count as not touching it", async () => {
    expect((await run(push([{ id: "c" }]))).dropped).toEqual([]);
  });

  test("without an organization in the payload, the owner names the org", async () => {
    const { dropped, lines } = await run(push([commit({ modified: [".github/kumo.yml"] })], { organization: undefined }));
    expect(dropped).toEqual(["settings 4242", "groups octo-org"]);
    expect(lines[0]!.fields).toMatchObject({ org: "octo-org" });
    const ownerless = await run(push([commit({ modified: [".github/kumo.yml"] })], { organization: undefined, repository: { name: ".github", default_branch: "main" } }));
    expect(ownerless.dropped).toEqual(["settings 4242", "groups "]);
  });

  test.each([
    ["another repository", { repository: { name: "app", default_branch: "main", owner: { login: "octo-org" } } }],
    ["another branch", { ref: "refs/heads/feature" }],
    ["a tag named like the default branch", { ref: "refs/tags/main" }],
    ["no installation", { installation: undefined }],
  ])("%s: nothing dropped", async (_name, overrides) => {
    const { dropped, lines } = await run(push([commit({ modified: [".github/kumo.yml"] })], overrides));
    expect(dropped).toEqual([]);
    expect(lines).toEqual([]);
  });
});
