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
# Files stay root-owned: the app only reads them.
USER node
EXPOSE 8080
CMD ["node", "dist/app/entry/server.js"]
