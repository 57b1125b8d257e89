import { z } from "zod";

// The schema of `.github/kumo.yml` in the organization's `.github` repository.
// It is the reference of the settings: every field says what it does.

const CLOUD_RUN_JOB = /^(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|projects\/[^/\s]+\/locations\/[^/\s]+\/jobs\/[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)$/;

export const RunnerSpecSchema = z
  .object({
    labels: z
      .array(z.string().trim().min(1).max(256))
      .min(1)
      .max(100)
      .describe("Labels the JIT runner gets. A job matches when ALL its runs-on labels are here (case-insensitive)."),
    group: z.string().trim().min(1).default("Default").describe("Runner group name, resolved to its id through the API."),
    job: z
      .string()
      .regex(CLOUD_RUN_JOB, "must be a Cloud Run job name or projects/P/locations/R/jobs/J")
      .describe("Cloud Run job in CLOUD_RUN_REGION, or its full resource name."),
    maxRunners: z.number().int().positive().optional().describe("Cap of live runners of this spec; more jobs wait."),
  })
  .strict();

const RunnerListSchema = z.array(RunnerSpecSchema).default([]);

export const SettingsSchema = z
  .object({
    runners: RunnerListSchema.describe("Org-wide label map; first match wins."),
    repositories: z
      .record(z.string().min(1), z.object({ runners: RunnerListSchema }).strict())
      .default({})
      .describe("Per-repository label maps, consulted before the org-wide list."),
    explain: z
      .boolean()
      .default(true)
      .describe("When a job addressed to Kumo cannot start or waits, say why in a check run on its commit (neutral: never blocks a merge)."),
  })
  .strict();

export type RunnerSpec = z.infer<typeof RunnerSpecSchema>;
export type Settings = z.infer<typeof SettingsSchema>;

/**
 * An invalid file still says, as far as it can be read, which labels it meant
 * to serve and whether explaining is on: jobs with those labels are told why
 * nothing starts.
 */
export type ParsedSettings = { ok: true; settings: Settings } | { ok: false; errors: string[]; labels: string[]; explain: boolean };

/** Labels listed anywhere in the file's runner specs, read leniently. */
function labelsIn(raw: unknown): string[] {
  const r = (raw ?? {}) as { runners?: unknown; repositories?: unknown };
  const lists = [r.runners, ...Object.values(typeof r.repositories === "object" && r.repositories ? r.repositories : {}).map((x) => (x as { runners?: unknown })?.runners)];
  return lists.flatMap((runners) => (Array.isArray(runners) ? runners : [])).flatMap((spec) => (Array.isArray(spec?.labels) ? spec.labels.filter((l: unknown) => typeof l === "string") : []));
}

/** A file that could not be read as settings at all. */
export function unreadableSettings(error: string): ParsedSettings {
  return { ok: false, errors: [error], labels: [], explain: true };
}

/** Validates raw settings; on failure lists every problem with its path (`runners.0.job: …`). */
export function parseSettings(raw: unknown): ParsedSettings {
  const result = SettingsSchema.safeParse(raw ?? {});
  if (!result.success) {
    return {
      ok: false,
      errors: result.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(file)"}: ${i.message}`),
      labels: labelsIn(raw),
      explain: (raw as { explain?: unknown } | null)?.explain !== false,
    };
  }
  // Repository names are case-insensitive on GitHub.
  const repositories = Object.fromEntries(
    Object.entries(result.data.repositories).map(([name, value]) => [name.toLowerCase(), value]),
  );
  return { ok: true, settings: { ...result.data, repositories } };
}
