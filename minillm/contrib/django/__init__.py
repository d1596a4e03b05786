"""minillm for Django: a cost model and migration, a sink that writes
through the ORM, and a streaming response that settles once -- also when
the browser goes away.

Add ``"minillm.contrib.django"`` to ``INSTALLED_APPS`` and run ``migrate``;
then::

    from minillm.contrib.django import DjangoSink, stream_response

    client = minillm.Client("anthropic/claude-haiku-4-5", on_cost=DjangoSink())

    def answer(request):
        return stream_response(client.stream(request.GET["q"], meta={"user_id": request.user.id}))

The models are imported lazily, so importing this module never touches
Django's app registry.
"""

from __future__ import annotations

from .responses import stream_response
from .sink import DjangoSink

__all__ = ["DjangoSink", "stream_response"]
