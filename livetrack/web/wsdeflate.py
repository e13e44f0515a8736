"""uvicorn's ``websockets-sansio`` protocol, negotiating permessage-deflate so that compression
stays encode-once: without context takeover on the server's side (each message compressed on its
own, so the hub compresses a message once and every compressing client gets the same bytes;
see :func:`livetrack.live.wire.deflate_frame`) and none on the client's (the server keeps no
compressor or decompressor per idle connection). A client that offers no compression gets plain
frames.

Serve with ``uvicorn.run(app, ws=WS_PROTOCOL)``.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol

#: The import string uvicorn takes as its ``ws`` setting.
WS_PROTOCOL = "livetrack.web.wsdeflate:SharedDeflateProtocol"


class SharedDeflateProtocol(WebSocketsSansIOProtocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.conn = ServerProtocol(
            extensions=[
                ServerPerMessageDeflateFactory(
                    server_no_context_takeover=True,
                    client_no_context_takeover=True,
                    compress_settings={"level": 6},
                )
            ],
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )
