"""OpenAI-compatible candidate: any ``/v1/chat/completions`` endpoint (OpenAI, vLLM serve, a gateway).

The API key is read from the environment variable NAMED in config (``api_key_env``); the key itself
never enters a config, a repr, a log line or an error message (errors are scrubbed of it, since
some servers echo request headers back).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rl_router.pool.backend import describe_error, error_result, sampling_of
from rl_router.pool.types import ModelDescriptor, Request, Result

REDACTED = "<redacted>"


@dataclass
class OpenAIOptions:
    """Where the endpoint is and how hard to hit it."""

    base_url: str = "https://api.openai.com/v1"  # endpoint root (ends in /v1)
    api_key_env: str | None = "OPENAI_API_KEY"  # NAME of the env var holding the key; null: keyless server
    max_concurrency: int = 8  # requests in flight at once for this model

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"openai.max_concurrency={self.max_concurrency}: use at least 1")


class OpenAIBackend:
    """Sends each request as one chat completion, ``max_concurrency`` at a time.

    Args:
        descriptor: the candidate; ``descriptor.model`` is the endpoint's model id.
        options: endpoint, key variable, concurrency.
        timeout_s: per-request HTTP timeout.

    Raises:
        ValueError: ``api_key_env`` names a variable that is not set.
    """

    enforces_timeout = True  # the HTTP client times out each request and closes its connection
    cache_answers = True

    def __init__(
        self, descriptor: ModelDescriptor, options: OpenAIOptions | None = None, timeout_s: float = 300.0
    ) -> None:
        import openai

        self.descriptor = descriptor
        self.options = options or OpenAIOptions()
        key_env = self.options.api_key_env
        if key_env is not None and not os.environ.get(key_env):
            raise ValueError(
                f"model {descriptor.name!r}: environment variable {key_env} is not set; export it, "
                "or set openai.api_key_env: null for a server without keys"
            )
        self._secret = os.environ[key_env] if key_env is not None else ""
        # The pool retries; the client's own retries would multiply attempts and hide the count.
        self._client = openai.OpenAI(
            base_url=self.options.base_url,
            api_key=self._secret or "unused",
            timeout=timeout_s,
            max_retries=0,
        )
        self._executor = ThreadPoolExecutor(self.options.max_concurrency, thread_name_prefix=descriptor.name)

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(name={self.descriptor.name!r}, model={self.descriptor.model!r}, "
            f"base_url={self.options.base_url!r}, api_key_env={self.options.api_key_env!r})"
        )

    def wait_ready(self) -> None:
        """Ready once built."""

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [self.descriptor]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        return list(self._executor.map(self._complete, requests))

    def _complete(self, request: Request) -> Result:
        sampling = sampling_of(request, self.descriptor)
        start = time.perf_counter()
        try:
            response = self._client.chat.completions.create(
                model=self.descriptor.model,
                messages=list(request.messages),
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=sampling.seed,
            )
        except Exception as exc:  # any transport or HTTP fault becomes this request's error
            return error_result(self._redact(describe_error(exc)), time.perf_counter() - start)
        latency = time.perf_counter() - start
        usage = response.usage
        input_tokens = usage.prompt_tokens if usage else 0
        output_tokens = usage.completion_tokens if usage else 0
        return Result(
            text=(response.choices[0].message.content or "").strip() if response.choices else "",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self.descriptor.cost_usd(input_tokens, output_tokens),
            latency_s=latency,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, REDACTED) if self._secret else text

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()
