import { describe, expect, test } from "@jest/globals";
import nock from "nock";
import { lostWebhooks } from "../../app/reconcile/lost-webhooks.js";
import { GITHUB, mockGitHub } from "../helpers/github.js";
import { createHarness, reconcileWith, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

describe("reconcile: lost webhooks", () => {
  const track = trackMocks();
  const failed = (id: number, guid: string, agoMs: number) => ({ id, guid, status: "Invalid HTTP Response: 502", delivered_at: new Date(Date.now() - agoMs).toISOString() });

  test("after a pass, the next one looks back to it with 2 minutes of overlap, no further", async () => {
    const h = createHarness();
    await h.deps.store.setMark("deliveries", new Date(Date.now() - 10 * MINUTE));
    track(mockGitHub().hasDeliveries([failed(1, "in-overlap", 11 * MINUTE), failed(2, "before-the-last-pass", 13 * MINUTE)]).redelivers(1));

    const [summary] = await reconcileWith(h, {}, [lostWebhooks]);

    expect(summary!.counts).toEqual({ lost: 1, redelivered: 1, givenUp: 0, errors: 0 });
    expect(h.logs.find(/lost webhook redelivered/)).toMatchObject({ deliveryId: "in-overlap", event: "workflow_job", action: "queued" });
  });

  test("the first pass looks back firstLookbackMs", async () => {
    const h = createHarness();
    track(mockGitHub().hasDeliveries([failed(1, "recent", 29 * MINUTE), failed(2, "older", 31 * MINUTE)]).redelivers(1));

    const [summary] = await reconcileWith(h, { firstLookbackMs: 30 * MINUTE }, [lostWebhooks]);

    expect(summary!.counts).toEqual({ lost: 1, redelivered: 1, givenUp: 0, errors: 0 });
  });

  test("never further back than GitHub keeps deliveries (3 days), however old the last pass", async () => {
    const h = createHarness();
    await h.deps.store.setMark("deliveries", new Date(Date.now() - 5 * DAY));
    track(mockGitHub().hasDeliveries([failed(1, "two-days-old", 2 * DAY), failed(2, "gone-on-github", 3 * DAY + 5 * MINUTE)]).redelivers(1));

    const [summary] = await reconcileWith(h, {}, [lostWebhooks]);

    expect(summary!.counts).toMatchObject({ lost: 1, redelivered: 1 });
  });

  test("the watermark moves to the pass's start", async () => {
    const h = createHarness();
    track(mockGitHub().hasDeliveries([]));
    const now = new Date(Date.now() - 1_000);
    await reconcileWith(h, {}, [lostWebhooks], now);
    expect(await h.deps.store.getMark("deliveries")).toEqual(now);
  });

  test("a pass out of time redelivers nothing and leaves the watermark where it was", async () => {
    const h = createHarness();
    const mark = new Date(Date.now() - 10 * MINUTE);
    await h.deps.store.setMark("deliveries", mark);
    track(mockGitHub().hasDeliveries([failed(1, "lost", MINUTE)]));

    const [summary] = await reconcileWith(h, { budgetMs: -1 }, [lostWebhooks]);

    expect(summary!.counts).toEqual({ lost: 1, redelivered: 0, givenUp: 0, errors: 0 });
    expect(await h.deps.store.getMark("deliveries")).toEqual(mark);
  });

  test("a redelivery GitHub refuses is counted and logged; the others still go", async () => {
    const h = createHarness();
    track(mockGitHub().hasDeliveries([failed(1, "refused", MINUTE), failed(2, "fine", 2 * MINUTE)]).redelivers(2));
    const refused = nock(GITHUB).post("/app/hook/deliveries/1/attempts").reply(500, { message: "Server Error" });

    const [summary] = await reconcileWith(h, {}, [lostWebhooks]);

    expect(refused.isDone()).toBe(true);
    expect(summary!.counts).toEqual({ lost: 2, redelivered: 1, givenUp: 0, errors: 1 });
    expect(h.logs.find(/lost webhook not redelivered/)).toMatchObject({ level: 50, deliveryId: "refused", err: expect.stringMatching(/^redeliver 1: HTTP 500/) });
  });
});
