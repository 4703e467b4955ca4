const mysql = require('mysql2/promise');
(async () => {
  const c = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'scratch', timezone: 'Z', dateStrings: true });
  await c.query('SET GLOBAL innodb_buffer_pool_size = 128*1048576');
  const tables = process.argv.slice(2);
  const now = Date.now();
  const fmt = (t) => new Date(t).toISOString().replace('T', ' ').replace('Z', '');
  const queries = {
    newest: () => ['SELECT id, fired_at, execution_status FROM T FORCE INDEX (idx_events_fired) WHERE fired_at >= ? ORDER BY fired_at DESC, id DESC LIMIT 51', [fmt(now - 48 * 3600e3)]],
    failure: () => ['SELECT id, fired_at FROM T FORCE INDEX (idx_events_status_fired) WHERE execution_status = ? AND fired_at >= ? ORDER BY fired_at DESC, id DESC LIMIT 51', ['failure', fmt(now - 48 * 3600e3)]],
    cursor: () => { const c0 = now - Math.random() * 46 * 3600e3; return ['SELECT id, fired_at FROM T FORCE INDEX (idx_events_fired) WHERE fired_at >= ? AND fired_at < ? ORDER BY fired_at DESC, id DESC LIMIT 51', [fmt(now - 48 * 3600e3), fmt(c0)]]; },
    trigger: () => { const tr = '0190aaaa-0000-7000-8000-' + String(Math.floor(Math.random() * 1000)).padStart(12, '0'); return ['SELECT id, fired_at FROM T FORCE INDEX (idx_events_trigger_status_fired) WHERE trigger_id = ? AND execution_status = ? AND fired_at >= ? ORDER BY fired_at DESC, id DESC LIMIT 51', [tr, 'success', fmt(now - 48 * 3600e3)]]; },
    trigger_fail_cursor: () => { const tr = '0190aaaa-0000-7000-8000-' + String(Math.floor(Math.random() * 1000)).padStart(12, '0'); const c0 = now - Math.random() * 46 * 3600e3; return ['SELECT id, fired_at FROM T FORCE INDEX (idx_events_trigger_status_fired) WHERE trigger_id = ? AND execution_status = ? AND fired_at >= ? AND fired_at < ? ORDER BY fired_at DESC, id DESC LIMIT 51', [tr, 'success', fmt(now - 48 * 3600e3), fmt(c0)]]; },
  };
  const res = {};
  for (let round = 0; round < 40; round++) {
    for (const [qn, q] of Object.entries(queries)) {
      const [sql, args] = q();
      for (const t of tables) {
        const t0 = process.hrtime.bigint();
        await c.query(sql.replace('FROM T ', 'FROM ' + t + ' '), args);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        ((res[qn] ??= {})[t] ??= []).push(ms);
      }
    }
  }
  for (const [qn, m] of Object.entries(res)) {
    console.log(qn.padEnd(22), Object.entries(m).map(([t, a]) => { a.sort((x, y) => x - y); return `${t}: p50 ${a[20].toFixed(2)} p95 ${a[38].toFixed(2)} max ${a[39].toFixed(2)}`; }).join(' | '));
  }
  const [r] = await c.query("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_reads'"); console.log(r);
  await c.end();
})();
