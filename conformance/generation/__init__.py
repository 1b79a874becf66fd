"""Generated and multi-step checking: strategies from the schemas, mutations, replayable steps.

* :mod:`.schema` compiles the REP JSON Schemas (the keyword subset they use) into hypothesis
  strategies; :mod:`.messages` builds whole client envelopes per type and the boundary
  phase; :mod:`.mutations` breaks valid messages one way at a time, each confirmed invalid
  by ``rep_spec``.
* :mod:`.scenario` runs and records every step against the server, so any failure can be
  replayed; :mod:`.explore` drives hypothesis and turns failures into replay files;
  :mod:`.sse` reads ``GET /events``; :mod:`.model` predicts deliveries for the stateful
  checks and :mod:`.data_model` versions, revisions and syncs for the data programs,
  whose steps :mod:`.data_runner` performs; :mod:`.settings` holds the run profiles
  (``ci``, ``thorough``, ``load``); :mod:`.replay` is
  ``rep-conformance replay FILE --target T`` (FIXED or FAILED).
"""
