FROM b
LABEL a=b "c d"=e
EXPOSE 80/tcp 53/udp
VOLUME ["/v"]
SHELL ["/bin/sh", "-c"]
STOPSIGNAL SIGTERM
