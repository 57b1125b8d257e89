import type { CloudRunLauncher } from "./cloud-run-launcher.js";
import type { ComputeEngineLauncher } from "./compute-engine-launcher.js";
import { INSTANCE_NAME, type ExecutionStatus, type LaunchTarget, type Launcher, type RunnerMachine } from "./launcher.js";

/**
 * The launcher handlers and reconcile use: a launch goes to its target's
 * backend, and an execution's name says which backend made it, so no caller
 * ever names Cloud Run or Compute Engine.
 */
export class Backends implements Launcher {
  constructor(
    readonly cloudRun: Launcher & Partial<Pick<CloudRunLauncher, "close">>,
    readonly computeEngine: Launcher & Pick<ComputeEngineLauncher, "close">,
  ) {}

  private of(execution: string): Launcher {
    return INSTANCE_NAME.test(execution) ? this.computeEngine : this.cloudRun;
  }

  launch(target: LaunchTarget, encodedJitConfig: string, runner: { name: string; attempt: number }): Promise<{ execution: string }> {
    return (target.backend === "compute-engine" ? this.computeEngine : this.cloudRun).launch(target, encodedJitConfig, runner);
  }

  cancel(execution: string): Promise<void> {
    return this.of(execution).cancel(execution);
  }

  describe(execution: string): Promise<ExecutionStatus | undefined> {
    return this.of(execution).describe(execution);
  }

  finished(execution: string): Promise<void> {
    return this.of(execution).finished(execution);
  }

  outlivesRunner(target: LaunchTarget): boolean {
    return (target.backend === "compute-engine" ? this.computeEngine : this.cloudRun).outlivesRunner(target);
  }

  failureVisibleAfterMs(execution: string): number | undefined {
    return this.of(execution).failureVisibleAfterMs(execution);
  }

  async machines(): Promise<RunnerMachine[]> {
    const [a, b] = await Promise.all([this.cloudRun.machines(), this.computeEngine.machines()]);
    return [...a, ...b];
  }

  async close(): Promise<void> {
    await Promise.all([this.cloudRun.close?.(), this.computeEngine.close()]);
  }
}
