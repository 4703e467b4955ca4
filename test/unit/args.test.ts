import { expect } from 'chai';
import { choicesArg, envArg, intArg, listArg, numArg, optionalNumArg, parseArgs } from '../helpers/args';

/** The command-line parser the benchmarks and the fault soak share (test/helpers/args.ts). */
describe('command-line options (benchmarks and the fault soak)', () => {
  it('reads flags, --name=value and --name value', () => {
    const a = parseArgs(['--quick', '--n=200', '--rate', '50', '--keep']);
    expect([...a.flags]).to.deep.equal(['quick', 'keep']);
    expect(Object.fromEntries(a.values)).to.deep.equal({ n: '200', rate: '50' });
  });

  it('takes the next token as a value only when it is not another option', () => {
    const a = parseArgs(['--ha', '--minutes', '8', '--shared-db']);
    expect([...a.flags]).to.deep.equal(['ha', 'shared-db']);
    expect(a.values.get('minutes')).to.equal('8');
  });

  it('keeps values that hold = , / and : (settings, paths, URLs) whole', () => {
    const a = parseArgs(['--env=OUTBOX_SHARDS=16,RELAY_CONCURRENCY=1', '--cpu-prof', '/tmp/prof', '--pg-url', 'postgres://u@h:5432/']);
    expect(a.values.get('env')).to.equal('OUTBOX_SHARDS=16,RELAY_CONCURRENCY=1');
    expect(a.values.get('cpu-prof')).to.equal('/tmp/prof');
    expect(a.values.get('pg-url')).to.equal('postgres://u@h:5432/');
  });

  it('ignores tokens that belong to no option', () => {
    const a = parseArgs(['stray', '--quick']);
    expect([...a.flags]).to.deep.equal(['quick']);
    expect(a.values.size).to.equal(0);
  });

  it('gives numbers with _ separators, the default when absent, and rounds integer options', () => {
    const a = parseArgs(['--n=200_000', '--seconds=2.5']);
    expect(numArg(a, 'n', 1)).to.equal(200_000);
    expect(numArg(a, 'burst', 5000)).to.equal(5000);
    expect(intArg(a, 'seconds', 1)).to.equal(3);
    expect(optionalNumArg(a, 'fault-every')).to.equal(undefined);
    expect(optionalNumArg(a, 'seconds')).to.equal(2.5);
  });

  it('stops on a value that is not a positive number, naming the option', () => {
    for (const bad of ['--n=abc', '--n=0', '--n=-5', '--n=']) {
      expect(() => numArg(parseArgs([bad]), 'n', 1), bad).to.throw(/--n=.*positive number/);
    }
  });

  it('splits lists, dropping blanks, with a default list when absent', () => {
    expect(listArg(parseArgs(['--only= a, ,c ']), 'only', 'x')).to.deep.equal(['a', 'c']);
    expect(listArg(parseArgs([]), 'only', 'a,b')).to.deep.equal(['a', 'b']);
  });

  it('gives known choices in their own order, through aliases, and stops on an unknown one', () => {
    const all = ['us', 'graphile-worker', 'pg-boss'] as const;
    const alias = { pgboss: 'pg-boss' } as const;
    expect(choicesArg(parseArgs(['--systems=PGBOSS,us']), 'systems', all, alias)).to.deep.equal(['us', 'pg-boss']);
    expect(choicesArg(parseArgs([]), 'systems', all)).to.deep.equal([...all]);
    expect(() => choicesArg(parseArgs(['--systems=us,kafka']), 'systems', all)).to.throw(/--systems: unknown kafka; one of us/);
  });

  it('reads K=V,K=V settings, splitting at the first = and trimming', () => {
    const a = parseArgs(['--env= A=1 ,B=x=y,junk']);
    expect(envArg(a, 'env')).to.deep.equal({ A: '1', B: 'x=y' });
    expect(envArg(a, 'many-env')).to.deep.equal({});
  });
});
