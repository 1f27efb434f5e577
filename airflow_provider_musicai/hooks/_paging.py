"""The one paging rule of every listing (jobs, workflows, the idempotency lookup, the poller).

Sans-IO: :class:`Listing` says which page to ask for next and is told what came back; the hook's
sync and async loops only carry the requests. The rule does not trust a short page blindly:

* a server may cap its pages silently below the asked ``size`` (asked 20, served 7). A short
  *first* page therefore ends the listing only if this connection has already been seen serving
  pages that large; otherwise the listing goes on with the size the server really served, which is
  right whether the server offsets pages by its own capped size or by the asked one;
* a server (or a cache keyed on the path) that ignores ``page`` repeats the same page forever:
  the same page :data:`REPEATS_BEFORE_ENDLESS` times in a row, or more pages than ``max_pages``,
  is a typed error. A page repeated fewer times is skipped, not an error: on a live listing
  (newest first) exactly one page of jobs created between two requests shifts the previous page
  into the next one, which must neither end the listing nor list its jobs twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from airflow_provider_musicai.exceptions import MusicAIPagingError
from airflow_provider_musicai.hooks._api import ApiRequest, Endpoint, build_request

T = TypeVar("T")

#: Largest page each endpoint label has been seen to serve in full, per hook (connection).
ServedSizes = dict[str, int]

#: Consecutive identical pages that prove the server ignores ``page`` (one is a shifting listing).
REPEATS_BEFORE_ENDLESS = 3


class Listing(Generic[T]):
    """The state of one listing: the next page to ask for, or None once it is complete."""

    def __init__(
        self,
        endpoint: Endpoint[list[T]],
        query: Sequence[tuple[str, Any]],
        page_size: int,
        *,
        max_pages: int,
        served: ServedSizes,
    ) -> None:
        self.endpoint = endpoint
        self.query = list(query)
        self.size = page_size
        self.max_pages = max_pages
        self.served = served
        self.page = 0
        self.requests = 0
        self.done = False
        self._previous: str | None = None
        self._repeats = 0

    def next_request(self) -> ApiRequest[list[T]] | None:
        """The request for the next page, or None when the listing is complete."""
        if self.done:
            return None
        if self.requests >= self.max_pages:
            raise MusicAIPagingError(
                f"The listing did not end within max_pages={self.max_pages} pages of {self.size}; "
                "raise the connection extra max_pages if that many items are expected.",
                status_code=None,
                endpoint=self.endpoint.label,
            )
        return build_request(self.endpoint, query=[*self.query, ("page", self.page), ("size", self.size)])

    def accept(self, items: list[T]) -> list[T]:
        """Record the page the server answered; return its items."""
        self.requests += 1
        count = len(items)
        label = self.endpoint.label
        fingerprint = _fingerprint(items)
        if count and fingerprint == self._previous:
            self._repeats += 1
            if self._repeats >= REPEATS_BEFORE_ENDLESS:
                raise MusicAIPagingError(
                    f"Page {self.page} repeats the previous page ({self._repeats} times in a row): the "
                    "server (or a cache in front of it) ignores the page parameter, so the listing "
                    "would never end.",
                    status_code=None,
                    endpoint=label,
                )
            self.page += 1  # already listed: a live listing shifted by one page meanwhile
            return []
        self._repeats = 0
        self._previous = fingerprint
        known_full = self.served.get(label, 0)
        self.served[label] = max(known_full, count)
        if count == 0 or (count < self.size and (self.page > 0 or known_full >= self.size)):
            self.done = True
        elif self.page == 0 and count != self.size:
            # The server serves pages of its own size: go on with it (page 1 = the next item).
            self.size = count
        self.page += 1
        return items


def _fingerprint(items: list[Any]) -> str:
    encoded = json.dumps(items, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
