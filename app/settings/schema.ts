import { z } from "zod";
import { WarmPoolSchema, type WarmPool } from "../warm-pool/schedule.js";

// The schema of `.github/kumo.yml` in the organization's `.github` repository.
// It is the reference of the settings: every field says what it does.

const CLOUD_RUN_JOB = /^(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|projects\/[^/\s]+\/locations\/[^/\s]+\/jobs\/[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)$/;

const INSTANCE_TEMPLATE = /^(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|projects\/[^/\s]+\/(?:global|regions\/[a-z0-9-]+)\/instanceTemplates\/[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)$/;
const ZONE = /^[a-z]+-[a-z]+\d+-[a-z]$/;

/** Where runners are made: one Cloud Run job execution, or one Compute Engine VM (Docker works there). */
export const BACKENDS = ["cloud-run", "compute-engine"] as const;

export const RunnerSpecSchema = z
  .object({
    labels: z
      .array(z.string().trim().min(1).max(256))
      .min(1)
      .max(100)
      .describe("Labels the JIT runner gets. A job matches when ALL its runs-on labels are here (case-insensitive)."),
    group: z.string().trim().min(1).default("Default").describe("Runner group name, resolved to its id through the API."),
    backend: z.enum(BACKENDS).default("cloud-run").describe("cloud-run (default): one execution of `job`; compute-engine: one VM per job from `instanceTemplate`, for jobs that need Docker."),
    job: z
      .string()
      .regex(CLOUD_RUN_JOB, "must be a Cloud Run job name or projects/P/locations/R/jobs/J")
      .optional()
      .describe("cloud-run: the Cloud Run job in CLOUD_RUN_REGION, or its full resource name."),
    instanceTemplate: z
      .string()
      .regex(INSTANCE_TEMPLATE, "must be an instance template name or projects/P/global/instanceTemplates/T or projects/P/regions/R/instanceTemplates/T")
      .optional()
      .describe("compute-engine: the instance template in GOOGLE_CLOUD_PROJECT, or its full resource name."),
    zones: z
      .array(z.string().regex(ZONE, "must be a zone such as us-central1-a"))
      .min(1)
      .max(20)
      .refine((zones) => new Set(zones).size === zones.length, "lists a zone twice")
      .optional()
      .describe("compute-engine: zones tried in order; a stock-out or quota error moves the launch to the next."),
    maxRunMinutes: z
      .number()
      .int()
      .min(10)
      .max(7 * 24 * 60)
      .optional()
      .describe("compute-engine: Compute Engine deletes the VM after this many minutes whatever happens (default: the template's limit, else 360, GitHub's default job timeout)."),
    maxRunners: z.number().int().positive().optional().describe("Cap of live runners of this spec; more jobs wait."),
    warm: WarmPoolSchema.optional().describe("Idle runners kept connected in schedule windows, so a queued job starts at once."),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const need = (field: "job" | "instanceTemplate" | "zones") => {
      if (spec[field] === undefined) ctx.addIssue({ code: "custom", path: [field], message: `required with backend ${spec.backend}` });
    };
    const forbid = (field: "job" | "instanceTemplate" | "zones" | "maxRunMinutes") => {
      if (spec[field] !== undefined) ctx.addIssue({ code: "custom", path: [field], message: `not used with backend ${spec.backend}` });
    };
    if (spec.backend === "cloud-run") {
      need("job");
      forbid("instanceTemplate");
      forbid("zones");
      forbid("maxRunMinutes");
    } else {
      need("instanceTemplate");
      need("zones");
      forbid("job");
      // A warm VM that idled this long must still have time for a job before Compute Engine deletes it.
      const life = spec.maxRunMinutes ?? 360;
      if (spec.warm && spec.warm.maxIdleMinutes >= life) {
        ctx.addIssue({ code: "custom", path: ["warm", "maxIdleMinutes"], message: `must be shorter than maxRunMinutes (${life}), leaving time for the job a warm runner takes` });
      }
    }
  })
  .transform((spec) => spec as RunnerSpec);

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

type SpecCommon = { labels: string[]; group: string; maxRunners?: number | undefined; warm?: WarmPool | undefined };
export type CloudRunSpec = SpecCommon & { backend: "cloud-run"; job: string };
export type ComputeEngineSpec = SpecCommon & { backend: "compute-engine"; instanceTemplate: string; zones: string[]; maxRunMinutes?: number | undefined };
/** A runner spec as validated: the fields of its backend are there (superRefine checked them). */
export type RunnerSpec = CloudRunSpec | ComputeEngineSpec;
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
