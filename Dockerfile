# mock-llm-sse: a mock LLM streaming server, for CI services and local runs.
#   docker build -t mock-llm-sse .
#   docker run --rm -p 8383:8383 mock-llm-sse
#   docker run --rm -p 8383:8383 -v "$PWD/scenarios:/scenarios:ro" mock-llm-sse
#   docker run --rm -p 8383:8383 -e MOCK_LLM_WORKERS=auto -e MOCK_LLM_STATE=redis://redis:6379/0 mock-llm-sse

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mock_server ./mock_server
COPY scenarios ./scenarios
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# With the redis extra, so that replicas can share one state: MOCK_LLM_STATE=redis://HOST:PORT/DB.
# The package installed is the wheel built above, by its path: there is no version to pin (DL3013).
# hadolint ignore=DL3013
RUN wheel="$(echo /wheels/*.whl)" \
    && pip install --no-cache-dir "${wheel}[redis]" \
    && rm -rf /wheels \
    && groupadd --gid 10001 mock \
    && useradd --create-home --uid 10001 --gid mock --shell /usr/sbin/nologin mock \
    && mkdir /scenarios
# Numeric, so that platforms enforcing "run as non-root" can check it.
USER 10001:10001
WORKDIR /home/mock
# Bind every interface so that -p and CI service ports reach the server; the bundled scenarios ship
# in the package, and files mounted at /scenarios are loaded after them (an empty dir is fine).
ENV MOCK_LLM_HOST=0.0.0.0 \
    MOCK_LLM_PORT=8383 \
    MOCK_LLM_SCENARIOS=/scenarios
EXPOSE 8383
# No curl in a slim image: Python asks the health endpoint itself.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['MOCK_LLM_PORT'] + '/_mock/health', timeout=2)"]
ENTRYPOINT ["mock-llm-sse"]
CMD ["serve"]
