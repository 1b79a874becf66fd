"""Client conformance: the kit plays a scripted REP server and judges a client under test.

``rep-conformance client --target client.yaml`` starts, for every scenario, the command
the client target names, pointed at a REP server the kit scripts on loopback. The command
runs the client with a small adapter (a *driver*) that connects to the kit's control
channel, does what the kit asks (connect, request, join, subscribe, open an SSE stream,
disconnect) and reports what the client tells its application (answers, failures,
deliveries, reconnecting, gave up). Everything else is judged on the wire.

Modules, in the order a run uses them:

=============  =========================================================================
``target``     the client target file (``client-target.schema.json``)
``wire``       the scripted server: WebSocket, SSE and control endpoints, transcripts
``process``    starting and stopping the command under test
``scenarios``  the checks: what to do to the client and what the requirements expect
``runner``     one scenario after another, verdicts, reports (the server run's reports)
=============  =========================================================================
"""
