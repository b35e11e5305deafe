import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metricsCsv } from '../../src/host/csv';
import { appendRecord, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunData, SeriesTable } from '../../src/host/runs/types';

function run(name: string, tables: SeriesTable[]): RunData {
  return {
    summary: {
      key: name,
      hostId: 'local',
      hostLabel: 'This machine',
      dir: `/runs/${name}`,
      name,
      status: 'finished',
      checkpoints: [],
      malformed: { metrics: 0, samples: 0, events: 0 },
    },
    tables: new Map(tables.map((t) => [t.kind, t])),
    samples: [],
    events: [],
    evals: [],
  };
}

test('several runs export as one long-format CSV: a field a table never logged is empty, a logged NaN stays NaN', () => {
  const trainA = newSeriesTable('train');
  appendRecord(trainA, { step: 0, t: 1000, kind: 'train', loss: 7.5, lr: 0.001 });
  appendRecord(trainA, { step: 1, t: 1001, kind: 'train', loss: 'NaN', lr: 0.002 });
  const evalA = newSeriesTable('eval');
  appendRecord(evalA, { step: 1, t: 1002, kind: 'eval', loss: 7.1 });
  const trainB = newSeriesTable('train');
  appendRecord(trainB, { step: 0, t: 2000, loss: 6, my_metric: 3 });
  const csv = metricsCsv([run('a, "quoted"', [trainA, evalA]), run('b', [trainB])]);
  assert.deepEqual(csv.trim().split('\n'), [
    'run,kind,step,t,loss,lr,my_metric',
    '"a, ""quoted""",train,0,1000,7.5,0.001,',
    '"a, ""quoted""",train,1,1001,NaN,0.002,',
    '"a, ""quoted""",eval,1,1002,7.1,,',
    'b,train,0,2000,6,,3',
  ]);
});

test('a field a record left out is an empty cell, where the same field logged NaN is NaN', () => {
  const train = newSeriesTable('train');
  appendRecord(train, { step: 0, t: 1, loss: 7 }); // no acc yet
  appendRecord(train, { step: 1, t: 2, loss: 6, acc: 0.5 });
  appendRecord(train, { step: 2, t: 3, loss: 5 }); // acc left out again
  appendRecord(train, { step: 3, t: 4, loss: 4, acc: 'NaN' });
  assert.deepEqual(
    metricsCsv([run('r', [train])])
      .trim()
      .split('\n'),
    ['run,kind,step,t,acc,loss', 'r,train,0,1,,7', 'r,train,1,2,0.5,6', 'r,train,2,3,,5', 'r,train,3,4,NaN,4'],
  );
});

test('text that starts like a formula is neutralised; numbers, negative ones included, stay numbers', () => {
  const train = newSeriesTable('=cmd|"/c calc"!A1');
  appendRecord(train, { step: 0, t: 1, loss: -0.5, '@SUM(A1)': 1, '-2+3': -1e-7 });
  appendRecord(train, { step: 1, t: 2, loss: -Infinity });
  const lines = metricsCsv([run('+HYPERLINK("https://evil.example")', [train]), run('-1', [])])
    .trim()
    .split('\n');
  assert.deepEqual(lines, [
    `run,kind,step,t,'-2+3,'@SUM(A1),loss`,
    `"'+HYPERLINK(""https://evil.example"")","'=cmd|""/c calc""!A1",0,1,-1e-7,1,-0.5`,
    `"'+HYPERLINK(""https://evil.example"")","'=cmd|""/c calc""!A1",1,2,,,-Infinity`,
  ]);
  const tab = newSeriesTable('train');
  appendRecord(tab, { step: 0, t: 1, loss: 1 });
  assert.equal(
    metricsCsv([run('\t=1+1', [tab])])
      .trim()
      .split('\n')[1],
    `'\t=1+1,train,0,1,1`,
  );
  assert.equal(
    metricsCsv([run('-1', [tab])])
      .trim()
      .split('\n')[1],
    '-1,train,0,1,1',
    'a name that is a number stays one',
  );
});
