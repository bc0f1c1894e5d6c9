FROM b
# comment

RUN a \
# inner comment

  b \
  c
maintainer me
