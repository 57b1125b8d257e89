import { z } from "zod";

// When a runner spec keeps idle runners connected, and how many: pure, so the
// schedule's edge cases are table-tested without a clock.

export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export type Day = (typeof DAYS)[number];

const TIME = /^(?:[01]\d|2[0-3]):[0-5]\d$/;
const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const WarmWindowSchema = z
  .object({
    days: z.array(z.enum(DAYS)).min(1).default([...DAYS]).describe("Days the window starts on (in timeZone); default every day."),
    from: z.string().regex(TIME, "must be HH:MM (00:00-23:59)").describe("Start, HH:MM in timeZone."),
    to: z
      .string()
      .regex(/^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/, "must be HH:MM (00:00-24:00)")
      .describe("End, HH:MM in timeZone; earlier than `from` runs past midnight into the next day."),
    size: z.number().int().min(0).max(100).optional().describe("Idle runners in this window; default the pool's size."),
  })
  .strict()
  .refine((w) => w.from !== w.to, { message: "from and to are the same time: an empty window", path: ["to"] });

export const WarmPoolSchema = z
  .object({
    size: z.number().int().min(1).max(100).describe("Idle runners kept connected, inside the windows."),
    timeZone: z.string().refine(isTimeZone, "must be an IANA time zone such as Asia/Tokyo or UTC").default("UTC"),
    windows: z.array(WarmWindowSchema).min(1).max(20).optional().describe("When the pool is kept; default always."),
    maxIdleMinutes: z
      .number()
      .int()
      .min(5)
      .max(24 * 60)
      .default(20)
      .describe("An idle runner older than this is replaced: with the longest job it must still end before the task timeout."),
  })
  .strict();

export type WarmPool = z.infer<typeof WarmPoolSchema>;
export type WarmWindow = z.infer<typeof WarmWindowSchema>;

/** Weekday and minute of the day of `at` in `timeZone`. */
export function localTime(at: Date, timeZone: string): { day: Day; minute: number } {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(at);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  const day = part("weekday").toLowerCase().slice(0, 3) as Day;
  return { day, minute: Number(part("hour")) * 60 + Number(part("minute")) };
}

const previousDay = (day: Day): Day => DAYS[(DAYS.indexOf(day) + 6) % 7]!;

/** Whether `window` is open at local `day`/`minute`; a window past midnight belongs to the day it starts on. */
function isOpen(window: WarmWindow, day: Day, minute: number): boolean {
  const from = minutesOf(window.from);
  const to = window.to === "24:00" ? 24 * 60 : minutesOf(window.to);
  if (from < to) return window.days.includes(day) && minute >= from && minute < to;
  // Overnight: the evening of a listed day, or the morning after one.
  return (window.days.includes(day) && minute >= from) || (window.days.includes(previousDay(day)) && minute < to);
}

/** How many idle runners the pool should hold at `at`: the largest of the open windows, 0 outside them all. */
export function warmTarget(pool: WarmPool | undefined, at: Date): number {
  if (!pool) return 0;
  if (!pool.windows) return pool.size;
  const { day, minute } = localTime(at, pool.timeZone);
  return Math.max(0, ...pool.windows.filter((w) => isOpen(w, day, minute)).map((w) => w.size ?? pool.size));
}
