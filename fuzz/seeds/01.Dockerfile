FROM acme/my-base-image:1.0
CMD /app/hello.sh
