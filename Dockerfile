# The Airflow image of the scale-out setup (docker-compose.yaml): the official image plus dagspec.
#
# The slim variant, on the Python of the lock: the full apache/airflow:3.3.2 image ships the
# Google provider, whose pins (pandas<2.1.2, protobuf<3.20.2, tenacity<8.2.3 through its
# dependencies) cannot coexist with requirements.txt, so installing the lock over it would leave
# a broken provider behind. The lock plus the extras below resolve without moving any pin.
ARG AIRFLOW_BASE=apache/airflow:slim-3.3.2-python3.11
FROM ${AIRFLOW_BASE}

# The project sits where docker-compose.yaml mounts it (/opt/airflow/{dags,plugins,include}), so
# the editable install below imports the mounted include/ and code edits need no rebuild.
COPY --chown=airflow:0 requirements.txt pyproject.toml /opt/airflow/
COPY --chown=airflow:0 include/ /opt/airflow/include/

# Naming apache-airflow at the image's version keeps pip from moving Airflow itself (the
# official way to extend the image). The extras are what docker-compose.yaml uses: Celery on
# Redis, PostgreSQL metadata, the FAB auth manager with its `airflow users create`.
RUN pip install --no-cache-dir "apache-airflow[celery,redis,postgres,fab]==${AIRFLOW_VERSION}" \
        -r /opt/airflow/requirements.txt \
 && pip install --no-cache-dir --no-deps -e /opt/airflow \
 && rm -rf /opt/airflow/include/*.egg-info

# A named volume mounted here starts with this directory's owner (the airflow user).
RUN mkdir -p /opt/airflow/dagspec-data
ENV DAGSPEC_HOME=/opt/airflow/dagspec-data \
    DAGSPEC_PROJECT_ROOT=/opt/airflow
