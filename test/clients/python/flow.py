"""The whole API flow through the client openapi-generator's `python-pydantic-v1` generator makes from
openapi.yaml, used as generated (build/clients/python, on PYTHONPATH; run by
test/integration-clients/python.test.ts with Debian's python3-pydantic).

    python3 test/clients/python/flow.py <base url> <tag>
"""
import json
import sys
from datetime import datetime, timedelta, timezone

from etp_client import ApiClient, Configuration
from etp_client.api import EventsApi, OperatorApi, TriggersApi, WebhooksApi
from etp_client.exceptions import ApiException
from etp_client.models import (
    BulkReplayRequest, BulkStatusChange, CancelRequest, ExecutionStatus, CronScheduledConfig, CronScheduledTriggerCreate,
    CronScheduledTriggerUpdate, EventSource, FireWebhookBatchRequest, HttpMethod, IntervalScheduledConfig,
    IntervalScheduledSchedulePreview, IntervalScheduledTriggerCreate, IntervalScheduledTriggerUpdate,
    MisfirePolicy, Problem, RetryPolicy, SchedulePreviewRequest, TestTriggerRequest, TimeScheduledConfig,
    TimeScheduledTestRun, TimeScheduledTriggerCreate, TimeScheduledTriggerUpdate, TriggerCreate, TriggerType,
    TriggerUpdate, UnsavedTestRun, WebhookConfig, WebhookTriggerCreate, WebhookTriggerUpdate,
)

ENDPOINT = "https://example.com/hooks/flow"
UPDATES = {
    "webhook": WebhookTriggerUpdate,
    "time_scheduled": TimeScheduledTriggerUpdate,
    "cron_scheduled": CronScheduledTriggerUpdate,
    "interval_scheduled": IntervalScheduledTriggerUpdate,
}


def as_update(trigger):
    """A PUT body that sends a trigger's settings back as GET returned them."""
    t = trigger.actual_instance
    return TriggerUpdate(UPDATES[t.type](type=t.type, name=t.name, status=t.status, config=t.config, tags=t.tags))


def problem_of(call, status):
    try:
        call()
    except ApiException as e:
        assert e.status == status, f"{e.status}: {e.body}"
        return Problem.from_json(e.body)
    raise AssertionError("expected the call to fail")


def main(base_url, tag):
    client = ApiClient(Configuration(host=base_url))
    triggers, webhooks, events, operator = TriggersApi(client), WebhooksApi(client), EventsApi(client), OperatorApi(client)
    create = lambda body: triggers.create_trigger(TriggerCreate(body)).actual_instance  # noqa: E731

    # Create all four types, each with non-default settings.
    webhook = create(WebhookTriggerCreate(
        name="orders", type="webhook", tags=[tag],
        config=WebhookConfig(
            endpoint=ENDPOINT, http_method=HttpMethod.PUT, timeout_ms=5000, headers={"X-Env": "flow"},
            retry=RetryPolicy(max_attempts=2, backoff_ms=500),
            schema={"type": "object", "required": ["order_id"],
                    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}}})))
    once = create(TimeScheduledTriggerCreate(
        name="reminder", type="time_scheduled", tags=[tag],
        config=TimeScheduledConfig(endpoint=ENDPOINT, delay_seconds=3600, timezone="Europe/Berlin", payload={"campaign": "winter"})))
    cron = create(CronScheduledTriggerCreate(
        name="daily-report", type="cron_scheduled", tags=[tag],
        config=CronScheduledConfig(
            endpoint=ENDPOINT, cron="0 9 * * 1-5", timezone="America/New_York", payload={"report": "daily"},
            misfire_policy=MisfirePolicy.SKIP, max_backfill=10, jitter_seconds=30,
            start_at="2030-01-01T00:00:00", end_at="2031-01-01T00:00:00",
            retry=RetryPolicy(max_attempts=3, backoff_ms=2000, max_age_seconds=600))))
    interval = create(IntervalScheduledTriggerCreate(
        name="sync", type="interval_scheduled", tags=[tag],
        config=IntervalScheduledConfig(endpoint=ENDPOINT, interval_seconds=1800, timeout_ms=2000)))
    assert webhook.config.http_method == HttpMethod.PUT and webhook.config.has_secret is False
    everything = [webhook, once, cron, interval]

    # List with filters, by page and by cursor.
    crons = triggers.list_triggers(type=TriggerType.CRON_SCHEDULED, tag=[tag])
    assert [t.actual_instance.id for t in crons.triggers] == [cron.id]
    page1 = triggers.list_triggers(tag=[tag], limit=3, page=1)
    page2 = triggers.list_triggers(tag=[tag], limit=3, page=2)
    assert page1.pagination.total_records == 4
    by_cursor = triggers.list_triggers(tag=[tag], limit=3, cursor=page1.pagination.next_cursor)
    assert [t.actual_instance.id for t in by_cursor.triggers] == [t.actual_instance.id for t in page2.triggers]

    # GET → PUT round trip keeps every setting.
    for created in everything:
        before = triggers.get_trigger(created.id)
        after = triggers.update_trigger(created.id, as_update(before))
        assert after.actual_instance.config == before.actual_instance.config, (before, after)

    # Fire the webhook: valid, invalid (the problem names the field), batch.
    accepted = webhooks.fire_webhook(webhook.id, {"order_id": "1001", "amount": 25})
    invalid = problem_of(lambda: webhooks.fire_webhook(webhook.id, {"amount": -1}), 400)
    assert sorted(e.field for e in invalid.errors) == ["/amount", "/order_id"], invalid
    batch = webhooks.fire_webhook_batch(webhook.id, FireWebhookBatchRequest(events=[{"order_id": "1002"}, {"amount": 1}]))
    assert (batch.accepted, batch.rejected) == (1, 1)

    # Test runs: stored (given payload, then the configured one) and unsaved.
    stored = triggers.test_trigger(once.id, TestTriggerRequest(payload={"dry": True}))
    stored_default = triggers.test_trigger(once.id, TestTriggerRequest(payload=None))
    unsaved = triggers.test_unsaved_trigger(UnsavedTestRun(TimeScheduledTestRun(
        type="time_scheduled", config=TimeScheduledConfig(endpoint=ENDPOINT, delay_seconds=0, payload={"hi": 1}))))
    assert events.get_event(stored.event_id).payload == {"dry": True}
    assert events.get_event(stored_default.event_id).payload == {"campaign": "winter"}
    assert events.get_event(unsaved.event_id).trigger_id is None

    # Events: filter, cursor paging, a date-time filter, attempts.
    first = events.list_events(trigger_id=webhook.id, limit=1)
    second = events.list_events(trigger_id=webhook.id, limit=1, cursor=first.pagination.next_cursor)
    assert second.events[0].id != first.events[0].id
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    assert len(events.list_events(source=EventSource.MANUAL_MINUS_TEST, var_from=since).events) == 3
    assert operator.list_delivery_attempts(accepted.event_id).attempts == []

    # Only an ended event can be replayed, and no worker runs here: cancel the webhook trigger's two events
    # (they end failure), replay one, then every event of the trigger - the replayed one and the new replay
    # (not ended) are skipped.
    for e in events.list_events(trigger_id=webhook.id).events:
        assert operator.cancel_event(e.id, cancel_request=CancelRequest(reason='client flow')).execution_status == ExecutionStatus.FAILURE
    replay = operator.replay_event(accepted.event_id)
    assert replay.replay_of == accepted.event_id
    bulk = operator.replay_events(BulkReplayRequest(trigger_id=webhook.id))
    assert bulk.replayed == 1
    assert bulk.skipped.already_replayed == 1 and bulk.skipped.not_final == 1

    # Stats, upcoming runs, preview.
    assert events.get_trigger_stats(webhook.id).total == 4
    assert len(operator.get_upcoming_runs(cron.id, count=3).occurrences) == 3
    preview = operator.preview_schedule(SchedulePreviewRequest(IntervalScheduledSchedulePreview(
        type="interval_scheduled", config=IntervalScheduledConfig(endpoint=ENDPOINT, interval_seconds=60), count=2)))
    assert len(preview.occurrences) == 2

    # Bulk pause and resume by tag.
    assert operator.pause_triggers(BulkStatusChange(tag=tag)).updated == 4
    assert operator.resume_triggers(BulkStatusChange(tag=tag)).updated == 4

    # Delete.
    for t in everything:
        triggers.delete_trigger(t.id)
    problem_of(lambda: triggers.get_trigger(webhook.id), 404)
    print("python flow ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
