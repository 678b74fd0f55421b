"""The apps' producer is idempotent (a retried batch is written once), with or without Faust's transactions."""

import asyncio

import faust

from riskstream.stream import idempotence


def test_the_producer_an_app_builds_is_idempotent():
    idempotence.install()
    app = faust.App("idempotence-test", broker="kafka://127.0.0.1:1", processing_guarantee="at_least_once")

    async def build():
        return app.producer._new_producer()

    aio = asyncio.run(build())
    assert aio._txn_manager is not None and aio._txn_manager.transactional_id is None
