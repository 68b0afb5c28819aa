# Berth's container image, for users with a registry: built on debian:bookworm, run on
# debian:bookworm-slim as the non-root user berth with only the runtime libraries.
# scripts/image.sh builds the same runtime image offline (docker import).
#   docker build -t berth .
#   docker run -d -p 80:8080 -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     --group-add "$(stat -c %g /var/run/docker.sock)" berth
FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake ninja-build pkg-config git \
      libuv1-dev node-llhttp libssl-dev libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev libcrypt-dev libre2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF -DBERTH_BENCH=OFF \
 && cmake --build /build --target berth \
 && strip --strip-unneeded /build/berth

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libssl3 libyaml-cpp0.7 libprometheus-cpp-core1.0 libcrypt1 libre2-9 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/berth --no-create-home \
      --shell /usr/sbin/nologin berth \
 && install -d -o berth -g berth /var/lib/berth
COPY --from=build /build/berth /usr/bin/berth
COPY packaging/container/berth.yaml /etc/berth/berth.yaml
COPY config/berth.example.yaml /etc/berth/berth.example.yaml
USER 10001:10001
WORKDIR /var/lib/berth
EXPOSE 8080
ENTRYPOINT ["/usr/bin/berth"]
CMD ["--config", "/etc/berth/berth.yaml"]
