import type { KumoConfig } from "./config.js";
import { JitPacer } from "./github/jit-pacer.js";
import { CloudTasksQueue } from "./launch-queue/cloud-tasks.js";
import { INLINE, type LaunchQueue } from "./launch-queue/queue.js";
import { RunnerGroupResolver } from "./github/runner-groups.js";
import { Backends } from "./launcher/backends.js";
import { CloudRunLauncher } from "./launcher/cloud-run-launcher.js";
import { ComputeEngineLauncher } from "./launcher/compute-engine-launcher.js";
import type { Launcher } from "./launcher/launcher.js";
import { SettingsLoader } from "./settings/load.js";
import { boundedStore, type BoundedStore } from "./store/bounded-store.js";
import { FirestoreJobStore } from "./store/firestore-job-store.js";
import type { JobStore } from "./store/job-store.js";

/** Everything a handler does I/O with; tests pass their own. */
export interface KumoDeps {
  config: KumoConfig;
  store: BoundedStore;
  launcher: Launcher;
  settings: SettingsLoader;
  groups: RunnerGroupResolver;
  pacer: JitPacer;
  /** When launches run: inline, or as tasks of the Cloud Tasks queue (KUMO_LAUNCH_QUEUE). */
  queue: LaunchQueue;
}

export function createDeps(config: KumoConfig, overrides: Partial<Omit<KumoDeps, "store">> & { store?: JobStore } = {}): KumoDeps {
  return {
    config,
    store: boundedStore(
      overrides.store ??
        FirestoreJobStore.fromEnv({ projectId: config.project, databaseId: config.firestoreDatabaseId, leaseMs: config.launchLeaseMs }),
      config.storeTimeoutMs,
    ),
    launcher:
      overrides.launcher ??
      new Backends(
        CloudRunLauncher.fromEndpoint(config.cloudRunApiEndpoint),
        new ComputeEngineLauncher({
          enabled: config.computeEngine,
          endpoint: config.computeApiEndpoint,
          project: config.project,
          runnerPrefix: config.runnerPrefix,
        }),
      ),
    settings: overrides.settings ?? new SettingsLoader(config.settingsTtlMs),
    // Group visibility changes rarely and a wrong cache only delays, never misroutes: 5 minutes at least.
    groups: overrides.groups ?? new RunnerGroupResolver(Math.max(config.settingsTtlMs, 300_000)),
    pacer: overrides.pacer ?? new JitPacer(config.jitPerMinute, config.jitMaxWaitMs),
    queue: overrides.queue ?? (config.launchQueue ? new CloudTasksQueue(config.launchQueue, config.runnerPrefix) : INLINE),
  };
}
