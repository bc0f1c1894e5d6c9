FROM b
RUN <<EOF
echo one
EOF
COPY <<-"A" <<'B' /dst/
	body a
	A
body b
B
