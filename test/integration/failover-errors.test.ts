import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { until } from '../helpers/until';

/**
 * What a database failover throws at the API, made here on one server with the errors a cluster sends:
 * a BEFORE INSERT trigger raises the failover's error number (SIGNAL … SET MYSQL_ERRNO) for as long as a
 * non-transactional budget lasts (a MEMORY table: its count survives the rollback of the failing
 * statement), or stalls the transaction so the test can kill its connection mid-flight.
 * Promise under test: a transient error is retried or answered 503 with Retry-After — never a 202
 * without a commit, and never two event logs for one request.
 */
describe('failover errors: retried or answered 503, never a 202 without a commit', () => {
  let t: TestEnv;
  let app: Express;

  before(async () => {
    t = await createTestEnv('failovererrors');
    app = testApp(t);
    await t.db.raw('CREATE TABLE fault_budget (k VARCHAR(20) PRIMARY KEY, n INT NOT NULL) ENGINE=MEMORY');
  });
  after(async () => {
    await t?.cleanup();
  });
  afterEach(async () => {
    await t.db.raw('DROP TRIGGER IF EXISTS fault_outbox');
    await t.db.raw('DROP TRIGGER IF EXISTS fault_triggers');
    await t.db('fault_budget').delete();
  });

  /** `table`'s inserts raise errno `errno` (with `message`) the next `times` times. */
  async function failInserts(table: 'outbox' | 'triggers', times: number, errno: number, sqlstate: string, message: string) {
    await t.db('fault_budget').insert({ k: table, n: times });
    // The trigger text is fixed per test; nothing from a request reaches it.
    await t.db.raw(
      `CREATE TRIGGER fault_${table} BEFORE INSERT ON ${table} FOR EACH ROW
       BEGIN
         IF (SELECT n FROM fault_budget WHERE k = '${table}') > 0 THEN
           UPDATE fault_budget SET n = n - 1 WHERE k = '${table}';
           SIGNAL SQLSTATE '${sqlstate}' SET MYSQL_ERRNO = ${errno}, MESSAGE_TEXT = '${message}';
         END IF;
       END`,
    );
  }
  const budgetLeft = async (k: string) => Number(((await t.db('fault_budget').where({ k }).first()) as { n: number } | undefined)?.n ?? 0);
  const logsOf = async (id: string) =>
    Number(((await t.db('event_logs').where({ trigger_id: id }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);

  async function webhookTrigger(): Promise<string> {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({
        name: `wh-${randomUUID().slice(0, 8)}`,
        type: 'webhook',
        config: { endpoint: 'https://example.com/h', schema: { type: 'object' } },
      })
      .expect(201);
    return (res.body as { id: string }).id;
  }
  const fire = (id: string, key?: string) => {
    const r = request(app).post(`/api/v1/webhook/${id}`).set('content-type', 'application/json');
    return (key ? r.set('Idempotency-Key', key) : r).send(JSON.stringify({ order: 1 }));
  };

  it('retries a certification failure at commit (1213) and answers 202 with one event log', async () => {
    const id = await webhookTrigger();
    await failInserts('outbox', 2, 1213, '40001', 'WSREP detected deadlock/conflict and aborted the transaction');
    const res = await fire(id).expect(202);
    expect(await budgetLeft('outbox'), 'both injected failures were met').to.equal(0);
    expect(await logsOf(id)).to.equal(1);
    expect(
      await t
        .db('event_logs')
        .where({ id: (res.body as { event_id: string }).event_id })
        .first(),
    ).to.not.equal(undefined);
  });

  describe('a lost race (1213) in a management write is run again: 2xx, written once', () => {
    const CONFLICT = ['40001', 'Deadlock found when trying to get lock; try restarting transaction'] as const;
    const eventsWhere = async (where: Record<string, unknown>) =>
      Number(((await t.db('event_logs').where(where).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);

    it('a replay of a failed event', async () => {
      const id = await webhookTrigger();
      const original = ((await fire(id).expect(202)).body as { event_id: string }).event_id;
      await t.db('event_logs').where({ id: original }).update({ execution_status: 'failure' });
      await failInserts('outbox', 2, 1213, ...CONFLICT);
      const res = await request(app).post(`/api/v1/events/${original}/replay`);
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
      expect(await budgetLeft('outbox'), 'both injected failures were met').to.equal(0);
      expect(await eventsWhere({ replay_of: original })).to.equal(1);
      expect(await eventsWhere({ id: (res.body as { event_id: string }).event_id })).to.equal(1);
    });

    it('a webhook event sent with an Idempotency-Key', async () => {
      const id = await webhookTrigger();
      await failInserts('outbox', 2, 1213, ...CONFLICT);
      const key = `key-${randomUUID()}`;
      const res = await fire(id, key);
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
      expect(await budgetLeft('outbox')).to.equal(0);
      expect(await logsOf(id)).to.equal(1);
      // The key was stored with the commit: a repeat gets the same event back and writes nothing.
      const again = await fire(id, key).expect(202);
      expect((again.body as { event_id: string }).event_id).to.equal((res.body as { event_id: string }).event_id);
      expect(await logsOf(id)).to.equal(1);
    });

    it('a test run of a stored trigger', async () => {
      const id = await webhookTrigger();
      await failInserts('outbox', 2, 1213, ...CONFLICT);
      const res = await request(app)
        .post(`/api/v1/triggers/${id}/test`)
        .send({ payload: { order: 1 } });
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
      expect(await budgetLeft('outbox')).to.equal(0);
      expect(await eventsWhere({ trigger_id: id, is_test_run: true })).to.equal(1);
    });

    it('a trigger created', async () => {
      await failInserts('triggers', 2, 1213, ...CONFLICT);
      const name = `raced-${randomUUID().slice(0, 8)}`;
      const res = await request(app)
        .post('/api/v1/triggers')
        .send({ name, type: 'webhook', config: { endpoint: 'https://example.com/h', schema: { type: 'object' } } });
      expect(res.status, JSON.stringify(res.body)).to.equal(201);
      expect(await budgetLeft('triggers')).to.equal(0);
      expect(Number(((await t.db('triggers').where({ name }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n)).to.equal(1);
    });
  });

  for (const [what, errno, message] of [
    ['a node not yet synced (1047)', 1047, 'WSREP has not yet prepared node for application use'],
    ['a read-only node (1290)', 1290, 'The MariaDB server is running with the --read-only option so it cannot execute this statement'],
  ] as const) {
    it(`answers 503 with Retry-After while the writer is ${what}, on both webhook paths, and stores nothing`, async () => {
      const id = await webhookTrigger();
      await failInserts('outbox', 1000, errno, 'HY000', message);
      const key = `key-${randomUUID()}`;
      for (const k of [undefined, key]) {
        const res = await fire(id, k).expect(503);
        expect(res.headers['retry-after']).to.equal('1');
        expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
        expect(res.body.code).to.equal('SERVICE_UNAVAILABLE');
      }
      expect(await logsOf(id)).to.equal(0);
      // The node is healthy again: the same request is accepted, and the key was not burnt by the 503.
      await t.db('fault_budget').update({ n: 0 });
      await fire(id, key).expect(202);
      expect(await logsOf(id)).to.equal(1);
    });
  }

  it('answers 503 with Retry-After when a management write meets a read-only node', async () => {
    await failInserts('triggers', 1000, 1290, 'HY000', 'The MariaDB server is running with the --read-only option');
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({ name: 'ro', type: 'webhook', config: { endpoint: 'https://example.com/h', schema: { type: 'object' } } })
      .expect(503);
    expect(res.headers['retry-after']).to.equal('1');
    expect(res.body.code).to.equal('SERVICE_UNAVAILABLE');
    expect(await t.db('triggers').where({ name: 'ro' }).first()).to.equal(undefined);
  });

  it('survives its connection being killed mid-transaction: retried, 202, exactly one event log', async () => {
    const id = await webhookTrigger();
    await t.db('fault_budget').insert({ k: 'outbox', n: 1 });
    // The first group stalls inside its transaction (event log inserted, outbox insert waiting).
    await t.db.raw(
      `CREATE TRIGGER fault_outbox BEFORE INSERT ON outbox FOR EACH ROW
       BEGIN
         IF (SELECT n FROM fault_budget WHERE k = 'outbox') > 0 THEN
           UPDATE fault_budget SET n = n - 1 WHERE k = 'outbox';
           DO SLEEP(30);
         END IF;
       END`,
    );
    const answer = fire(id).then((r) => r);
    const victim = await until(
      async () => {
        const [rows] = (await t.db.raw(
          "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND STATE = 'User sleep' AND ID <> CONNECTION_ID()",
          [t.dbName],
        )) as unknown as [Array<{ id: number }>];
        return rows[0]?.id;
      },
      { timeoutMs: 10_000, message: 'the stalled group on the server' },
    );
    await t.db.raw('KILL CONNECTION ?', [victim]);
    const res = await answer;
    expect(res.status).to.equal(202);
    expect(await logsOf(id)).to.equal(1);
    const eventId = (res.body as { event_id: string }).event_id;
    expect(Number(((await t.db('outbox').where({ event_id: eventId }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n)).to.equal(1);
  });
});
