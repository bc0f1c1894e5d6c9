ARG V=1
FROM --platform=linux/amd64 img:${V:-2} AS build
ENV A="x y" B=${A:+z}
RUN ["sh", "-c", "echo $A"]
