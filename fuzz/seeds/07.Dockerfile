FROM b
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD true
HEALTHCHECK NONE
ONBUILD RUN make
ENTRYPOINT ["/e"]
