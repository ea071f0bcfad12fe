# nngeo dashboard with its embedded worker. Install steps are the README's, verbatim.
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -r requirements.txt
ENV NNGEO_HOME=/data \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"
# binds all interfaces on purpose inside the container; publish the port only behind authentication
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
