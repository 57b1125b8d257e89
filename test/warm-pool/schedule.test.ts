import { describe, expect, test } from "@jest/globals";
import { parseSettings } from "../../app/settings/schema.js";
import { localTime, warmTarget, WarmPoolSchema, type WarmPool } from "../../app/warm-pool/schedule.js";

const pool = (raw: unknown): WarmPool => WarmPoolSchema.parse(raw);
const tokyoWorkdays = pool({ size: 2, timeZone: "Asia/Tokyo", windows: [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "09:00", to: "19:00" }] });

describe("warmTarget: the pool's size at a moment", () => {
  test.each<[string, WarmPool | undefined, string, number]>([
    ["no pool", undefined, "2026-12-01T03:00:00Z", 0],
    ["no windows: always", pool({ size: 3 }), "2026-12-05T23:59:00Z", 3],
    ["Tuesday 09:30 in Tokyo (00:30 UTC)", tokyoWorkdays, "2026-12-01T00:30:00Z", 2],
    ["Tuesday 09:00 in Tokyo: the start is inside", tokyoWorkdays, "2026-12-01T00:00:00Z", 2],
    ["Tuesday 08:59 in Tokyo", tokyoWorkdays, "2026-11-30T23:59:00Z", 0],
    ["Tuesday 19:00 in Tokyo: the end is outside", tokyoWorkdays, "2026-12-01T10:00:00Z", 0],
    ["Saturday noon in Tokyo", tokyoWorkdays, "2026-12-05T03:00:00Z", 0],
    // Monday 08:30 UTC is already Monday 17:30 in Tokyo, but Sunday 23:30 UTC is Monday 08:30 there.
    ["Sunday 23:30 UTC = Monday 08:30 in Tokyo", tokyoWorkdays, "2026-11-29T23:30:00Z", 0],
    ["Monday 00:30 UTC = Monday 09:30 in Tokyo", tokyoWorkdays, "2026-11-30T00:30:00Z", 2],
  ])("%s", (_, p, at, expected) => {
    expect(warmTarget(p, new Date(at))).toBe(expected);
  });

  const overnight = pool({ size: 1, timeZone: "UTC", windows: [{ days: ["fri"], from: "22:00", to: "06:00" }] });
  test.each([
    ["Friday 21:59", "2026-12-04T21:59:00Z", 0],
    ["Friday 22:00", "2026-12-04T22:00:00Z", 1],
    ["Saturday 05:59 (the Friday window runs past midnight)", "2026-12-05T05:59:00Z", 1],
    ["Saturday 06:00", "2026-12-05T06:00:00Z", 0],
    ["Saturday 23:00 (no Saturday window)", "2026-12-05T23:00:00Z", 0],
    ["Thursday 05:00 (Wednesday is not listed)", "2026-12-03T05:00:00Z", 0],
  ])("a window past midnight: %s → %d", (_, at, expected) => {
    expect(warmTarget(overnight, new Date(at))).toBe(expected);
  });

  test("overlapping windows: the largest size; a window's own size wins over the pool's", () => {
    const p = pool({
      size: 2,
      windows: [
        { from: "00:00", to: "24:00" },
        { days: ["mon"], from: "08:00", to: "10:00", size: 6 },
        { days: ["mon"], from: "09:00", to: "09:30", size: 0 },
      ],
    });
    expect(warmTarget(p, new Date("2026-11-30T09:15:00Z"))).toBe(6);
    expect(warmTarget(p, new Date("2026-11-30T10:00:00Z"))).toBe(2);
    expect(warmTarget(p, new Date("2026-12-01T23:59:00Z"))).toBe(2);
  });

  test("daylight saving time is the zone's: 08:30 in New York is 13:30 UTC in winter, 12:30 UTC in summer", () => {
    const p = pool({ size: 1, timeZone: "America/New_York", windows: [{ from: "08:00", to: "09:00" }] });
    expect(warmTarget(p, new Date("2026-12-01T13:30:00Z"))).toBe(1);
    expect(warmTarget(p, new Date("2026-07-01T12:30:00Z"))).toBe(1);
    expect(warmTarget(p, new Date("2026-07-01T13:30:00Z"))).toBe(0);
    expect(localTime(new Date("2026-07-01T12:30:00Z"), "America/New_York")).toEqual({ day: "wed", minute: 8 * 60 + 30 });
  });
});

describe("invalid schedules are rejected with the field's path", () => {
  const errorsOf = (warm: unknown, spec: Record<string, unknown> = { job: "j" }) => {
    const parsed = parseSettings({ runners: [{ labels: ["k"], ...spec, warm }] });
    return parsed.ok ? [] : parsed.errors;
  };
  test.each([
    [{ size: 2, timeZone: "Mars/Olympus_Mons" }, "runners.0.warm.timeZone: must be an IANA time zone"],
    [{ size: 0 }, "runners.0.warm.size: "],
    [{ size: 2, windows: [] }, "runners.0.warm.windows: "],
    [{ size: 2, windows: [{ from: "9:00", to: "17:00" }] }, "runners.0.warm.windows.0.from: must be HH:MM"],
    [{ size: 2, windows: [{ from: "09:00", to: "24:30" }] }, "runners.0.warm.windows.0.to: must be HH:MM (00:00-24:00)"],
    [{ size: 2, windows: [{ from: "09:00", to: "09:00" }] }, "runners.0.warm.windows.0.to: from and to are the same time"],
    [{ size: 2, windows: [{ days: ["monday"], from: "09:00", to: "10:00" }] }, "runners.0.warm.windows.0.days.0: "],
    [{ size: 2, windows: [{ from: "09:00", to: "10:00", at: "x" }] }, 'runners.0.warm.windows.0: Unrecognized key: "at"'],
    [{ size: 2, maxIdleMinutes: 2 }, "runners.0.warm.maxIdleMinutes: "],
  ])("%j → %s", (warm, message) => {
    expect(errorsOf(warm)).toEqual([expect.stringContaining(message)]);
  });

  test("a VM spec's warm runners must idle less than the VM lives", () => {
    const vm = { backend: "compute-engine", instanceTemplate: "t", zones: ["us-central1-a"], maxRunMinutes: 60 };
    expect(errorsOf({ size: 1, maxIdleMinutes: 60 }, vm)).toEqual([
      "runners.0.warm.maxIdleMinutes: must be shorter than maxRunMinutes (60), leaving time for the job a warm runner takes",
    ]);
    expect(errorsOf({ size: 1, maxIdleMinutes: 20 }, vm)).toEqual([]);
  });

  test("defaults: UTC, always, 20 idle minutes", () => {
    expect(pool({ size: 1 })).toEqual({ size: 1, timeZone: "UTC", maxIdleMinutes: 20 });
  });
});
