# syntax=docker/dockerfile:1
# escape=`
FROM scratch AS a
RUN echo `
  hi
