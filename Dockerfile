# Kumo's app image: the Cloud Run service that receives GitHub's webhooks, and the kumo-reconcile
# Cloud Run job (same image, command `node dist/app/entry/reconcile-cli.js`).
#
# node:24.21.0-trixie-slim: Node 24 is the LTS line, and 24.21.0 is the version development and
# CI use, so the image runs what the tests ran; Debian 13 (trixie) is the current stable; slim
# because nothing here compiles native code. An exact tag, so a rebuild does not change Node.
FROM node:24.21.0-trixie-slim AS build
WORKDIR /app
# Manifests first: the dependency layer is reused until they change.
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

FROM node:24.21.0-trixie-slim
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
# Production dependencies only; package.json also tells Node that dist/ is ES modules.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
# app.yml: the GitHub App manifest Probot reads.
COPY app.yml ./
# Cold start: V8's compiled code of every module the service and the reconcile job load, made
# once here instead of by every new instance (Node reads NODE_COMPILE_CACHE by itself). Filled as
# the runtime user: Node keeps one cache per uid and Node version, found only by the uid that made it.
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
RUN mkdir .node-compile-cache && chown node .node-compile-cache
# Files stay root-owned (but the cache): the app only reads them.
USER node
RUN node --input-type=module -e 'for (const m of ["./dist/app/entry/server.js", "./dist/app/entry/front-door.js", \
      "./dist/app/reconcile/reconcile.js", "./dist/app/reconcile/from-probot.js", "./dist/app/reconcile/preflight.js", \
      "@google-cloud/run", "@google-cloud/firestore"]) await import(m)'
EXPOSE 8080
CMD ["node", "dist/app/entry/server.js"]
