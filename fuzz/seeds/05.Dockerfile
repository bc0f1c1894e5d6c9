FROM b
COPY --from=build --chown=1:1 --chmod=0755 a* b?/[c] /d/
ADD x.tar /
WORKDIR /w
USER u:g
