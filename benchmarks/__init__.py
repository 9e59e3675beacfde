"""lockkit's benchmarks: every backend beside its raw primitive and its peers, in one run.

Run ``python -m benchmarks --help`` (or ``nox -s bench``). Four measurements, each a
module of its own:

* `benchmarks.uncontended`: acquire+release pairs per second in one process;
* `benchmarks.handoff`: latency from a holder's release to a waiting process's acquire;
* `benchmarks.contended`: P processes x K locked increments of a counter;
* `benchmarks.importcost`: ``import lockkit`` over a bare interpreter, and the first
  ``Lock(...)``.

The subjects (lockkit backends, raw primitives, peer libraries) are described in
`benchmarks.subjects`; Redis runs on a private server from `benchmarks.redisserver`,
PostgreSQL and etcd (when their plugins are installed) on private servers from
`benchmarks.engines`; `benchmarks.targets` judges the numbers against the performance
bar of issue 7, `benchmarks.report` prints Markdown and `benchmarks.chart` draws a PNG.
Performance is never asserted in a unit test: this package only reports.
"""
