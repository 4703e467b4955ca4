// The whole API flow through the client openapi-generator's `java` generator (native library) makes from
// openapi.yaml, used as generated: built with Maven into build/clients/java, this file run with Java's
// single-file launcher against it (test/clients-other/clients.test.ts).
//
//   java -cp <client jar and dependencies> test/clients/java/Flow.java <base url> <tag>

import java.time.OffsetDateTime;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import local.etp.client.ApiClient;
import local.etp.client.ApiException;
import local.etp.client.api.EventsApi;
import local.etp.client.api.OperatorApi;
import local.etp.client.api.TriggersApi;
import local.etp.client.api.WebhooksApi;
import local.etp.client.model.*;

public class Flow {
  static final String ENDPOINT = "https://example.com/hooks/flow";

  static void check(boolean ok, String what) {
    if (!ok) throw new AssertionError(what);
  }

  static UUID idOf(Trigger t) {
    Object i = t.getActualInstance();
    if (i instanceof WebhookTrigger w) return w.getId();
    if (i instanceof TimeScheduledTrigger x) return x.getId();
    if (i instanceof CronScheduledTrigger x) return x.getId();
    if (i instanceof IntervalScheduledTrigger x) return x.getId();
    throw new AssertionError("unknown trigger " + i);
  }

  static Object configOf(Trigger t) {
    Object i = t.getActualInstance();
    if (i instanceof WebhookTrigger w) return w.getConfig();
    if (i instanceof TimeScheduledTrigger x) return x.getConfig();
    if (i instanceof CronScheduledTrigger x) return x.getConfig();
    if (i instanceof IntervalScheduledTrigger x) return x.getConfig();
    throw new AssertionError("unknown trigger " + i);
  }

  /** A PUT body that sends a trigger's settings back as GET returned them. */
  static TriggerUpdate asUpdate(Trigger t) {
    Object i = t.getActualInstance();
    if (i instanceof WebhookTrigger w)
      return new TriggerUpdate(new WebhookTriggerUpdate().type(WebhookTriggerUpdate.TypeEnum.WEBHOOK).name(w.getName()).status(w.getStatus()).config(w.getConfig()).tags(w.getTags()));
    if (i instanceof TimeScheduledTrigger x)
      return new TriggerUpdate(new TimeScheduledTriggerUpdate().type(TimeScheduledTriggerUpdate.TypeEnum.TIME_SCHEDULED).name(x.getName()).status(x.getStatus()).config(x.getConfig()).tags(x.getTags()));
    if (i instanceof CronScheduledTrigger x)
      return new TriggerUpdate(new CronScheduledTriggerUpdate().type(CronScheduledTriggerUpdate.TypeEnum.CRON_SCHEDULED).name(x.getName()).status(x.getStatus()).config(x.getConfig()).tags(x.getTags()));
    if (i instanceof IntervalScheduledTrigger x)
      return new TriggerUpdate(new IntervalScheduledTriggerUpdate().type(IntervalScheduledTriggerUpdate.TypeEnum.INTERVAL_SCHEDULED).name(x.getName()).status(x.getStatus()).config(x.getConfig()).tags(x.getTags()));
    throw new AssertionError("unknown trigger " + i);
  }

  interface Call { void run() throws Exception; }

  /** The failed call's status and problem document. */
  static Problem problemOf(ApiClient client, Call call, int status) throws Exception {
    try {
      call.run();
    } catch (ApiException e) {
      check(e.getCode() == status, "status " + e.getCode() + ": " + e.getResponseBody());
      return client.getObjectMapper().readValue(e.getResponseBody(), Problem.class);
    }
    throw new AssertionError("expected the call to fail");
  }

  public static void main(String[] args) throws Exception {
    ApiClient client = new ApiClient();
    client.updateBaseUri(args[0]);
    String tag = args[1];
    TriggersApi triggers = new TriggersApi(client);
    WebhooksApi webhooks = new WebhooksApi(client);
    EventsApi events = new EventsApi(client);
    OperatorApi operator = new OperatorApi(client);

    // Create all four types, each with non-default settings.
    Trigger webhook = triggers.createTrigger(new TriggerCreate(new WebhookTriggerCreate()
        .name("orders").type(WebhookTriggerCreate.TypeEnum.WEBHOOK).tags(Set.of(tag))
        .config(new WebhookConfig().endpoint(ENDPOINT).httpMethod(HttpMethod.PUT).timeoutMs(5000)
            .headers(Map.of("X-Env", "flow")).retry(new RetryPolicy().maxAttempts(2).backoffMs(500))
            .schema(Map.of("type", "object", "required", List.of("order_id"),
                "properties", Map.of("order_id", Map.of("type", "string"), "amount", Map.of("type", "number", "minimum", 0)))))));
    Trigger once = triggers.createTrigger(new TriggerCreate(new TimeScheduledTriggerCreate()
        .name("reminder").type(TimeScheduledTriggerCreate.TypeEnum.TIME_SCHEDULED).tags(Set.of(tag))
        .config(new TimeScheduledConfig().endpoint(ENDPOINT).delaySeconds(3600).timezone("Europe/Berlin").payload(Map.of("campaign", "winter")))));
    Trigger cron = triggers.createTrigger(new TriggerCreate(new CronScheduledTriggerCreate()
        .name("daily-report").type(CronScheduledTriggerCreate.TypeEnum.CRON_SCHEDULED).tags(Set.of(tag))
        .config(new CronScheduledConfig().endpoint(ENDPOINT).cron("0 9 * * 1-5").timezone("America/New_York")
            .payload(Map.of("report", "daily")).misfirePolicy(MisfirePolicy.SKIP).maxBackfill(10).jitterSeconds(30)
            .startAt("2030-01-01T00:00:00").endAt("2031-01-01T00:00:00")
            .retry(new RetryPolicy().maxAttempts(3).backoffMs(2000).maxAgeSeconds(600)))));
    Trigger interval = triggers.createTrigger(new TriggerCreate(new IntervalScheduledTriggerCreate()
        .name("sync").type(IntervalScheduledTriggerCreate.TypeEnum.INTERVAL_SCHEDULED).tags(Set.of(tag))
        .config(new IntervalScheduledConfig().endpoint(ENDPOINT).intervalSeconds(1800).timeoutMs(2000))));
    check(webhook.getWebhookTrigger().getConfig().getHttpMethod() == HttpMethod.PUT, "http_method");
    check(Boolean.FALSE.equals(webhook.getWebhookTrigger().getConfig().getHasSecret()), "has_secret");
    UUID webhookId = idOf(webhook), onceId = idOf(once), cronId = idOf(cron), intervalId = idOf(interval);
    List<Trigger> all = List.of(webhook, once, cron, interval);

    // List with filters, by page and by cursor.
    ListTriggers200Response crons = triggers.listTriggers(TriggerType.CRON_SCHEDULED, null, List.of(tag), null, null, null, null);
    check(crons.getTriggers().size() == 1 && idOf(crons.getTriggers().get(0)).equals(cronId), "type filter");
    ListTriggers200Response page1 = triggers.listTriggers(null, null, List.of(tag), null, 1, 3, null);
    ListTriggers200Response page2 = triggers.listTriggers(null, null, List.of(tag), null, 2, 3, null);
    check(page1.getPagination().getTotalRecords() == 4, "total_records");
    ListTriggers200Response byCursor = triggers.listTriggers(null, null, List.of(tag), null, null, 3, page1.getPagination().getNextCursor());
    check(idOf(byCursor.getTriggers().get(0)).equals(idOf(page2.getTriggers().get(0))), "cursor page");

    // GET → PUT round trip keeps every setting.
    for (Trigger created : all) {
      Trigger before = triggers.getTrigger(idOf(created));
      Trigger after = triggers.updateTrigger(idOf(created), asUpdate(before));
      check(configOf(after).equals(configOf(before)), "round trip: " + configOf(before) + " became " + configOf(after));
    }

    // Fire the webhook: valid, invalid (the problem names the field), batch.
    Accepted accepted = webhooks.fireWebhook(webhookId, Map.of("order_id", "1001", "amount", 25), null);
    Problem invalid = problemOf(client, () -> webhooks.fireWebhook(webhookId, Map.of("amount", -1), null), 400);
    check(invalid.getErrors().stream().map(FieldError::getField).sorted().toList().equals(List.of("/amount", "/order_id")), "fields " + invalid.getErrors());
    BatchResult batch = webhooks.fireWebhookBatch(webhookId, new FireWebhookBatchRequest().events(List.of(Map.of("order_id", "1002"), Map.of("amount", 1))), null);
    check(batch.getAccepted() == 1 && batch.getRejected() == 1, "batch");

    // Test runs: stored (given payload, then the configured one) and unsaved.
    Accepted stored = triggers.testTrigger(onceId, new TestTriggerRequest().payload(Map.of("dry", true)));
    Accepted storedDefault = triggers.testTrigger(onceId, new TestTriggerRequest());
    Accepted unsaved = triggers.testUnsavedTrigger(new UnsavedTestRun(new TimeScheduledTestRun()
        .type(TimeScheduledTestRun.TypeEnum.TIME_SCHEDULED).config(new TimeScheduledConfig().endpoint(ENDPOINT).delaySeconds(0).payload(Map.of("hi", 1)))));
    check(Map.of("dry", true).equals(events.getEvent(stored.getEventId()).getPayload()), "given payload");
    check(Map.of("campaign", "winter").equals(events.getEvent(storedDefault.getEventId()).getPayload()), "configured payload");
    check(events.getEvent(unsaved.getEventId()).getTriggerId() == null, "unsaved trigger_id");

    // Events: filter, cursor paging, a date-time filter, attempts.
    ListEvents200Response first = events.listEvents(webhookId, null, null, null, null, null, null, null, 1, null);
    ListEvents200Response second = events.listEvents(webhookId, null, null, null, null, null, null, null, 1, first.getPagination().getNextCursor());
    check(!second.getEvents().get(0).getId().equals(first.getEvents().get(0).getId()), "event cursor");
    check(events.listEvents(null, EventSource.MANUAL_TEST, null, null, null, OffsetDateTime.now().minusHours(1), null, null, null, null).getEvents().size() == 3, "from filter");
    check(operator.listDeliveryAttempts(accepted.getEventId()).getAttempts().isEmpty(), "attempts");

    // Only an ended event can be replayed, and no worker runs here: cancel the webhook trigger's two events
    // (they end failure), replay one, then every event of the trigger: the replayed one and the new replay
    // (not ended) are skipped.
    for (Event e : events.listEvents(webhookId, null, null, null, null, null, null, null, null, null).getEvents()) {
      check(operator.cancelEvent(e.getId(), new CancelRequest().reason("client flow")).getExecutionStatus() == ExecutionStatus.FAILURE, "cancel");
    }
    Replay replay = operator.replayEvent(accepted.getEventId(), null, null);
    check(replay.getReplayOf().equals(accepted.getEventId()), "replay_of");
    BulkReplayResult bulk = operator.replayEvents(new BulkReplayRequest().triggerId(webhookId));
    check(bulk.getReplayed() == 1, "bulk replay");
    check(bulk.getSkipped().getAlreadyReplayed() == 1 && bulk.getSkipped().getNotFinal() == 1, "bulk replay skips");

    // Stats, upcoming runs, preview.
    check(events.getTriggerStats(webhookId).getTotal() == 4, "stats");
    check(operator.getUpcomingRuns(cronId, 3).getOccurrences().size() == 3, "upcoming");
    Schedule preview = operator.previewSchedule(new SchedulePreviewRequest(new IntervalScheduledSchedulePreview()
        .type(IntervalScheduledSchedulePreview.TypeEnum.INTERVAL_SCHEDULED).config(new IntervalScheduledConfig().endpoint(ENDPOINT).intervalSeconds(60)).count(2)));
    check(preview.getOccurrences().size() == 2, "preview");

    // Bulk pause and resume by tag.
    check(operator.pauseTriggers(new BulkStatusChange().tag(tag)).getUpdated() == 4, "pause");
    check(operator.resumeTriggers(new BulkStatusChange().tag(tag)).getUpdated() == 4, "resume");

    // Delete.
    for (Trigger t : all) triggers.deleteTrigger(idOf(t));
    problemOf(client, () -> triggers.getTrigger(webhookId), 404);
    System.out.println("java flow ok");
  }
}
