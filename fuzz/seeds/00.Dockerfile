FROM busybox:latest
COPY . /app
