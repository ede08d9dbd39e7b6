#!/bin/sh
# tcb-callback.sh: ask a tornado-callback server to configure this host (the AWX
# provisioning callback), proving which cloud instance it is when it runs on AWS or GCP.
#
# Usage: tcb-callback.sh -s SERVER -t TEMPLATE_ID -c HOST_CONFIG_KEY [-e EXTRA_VARS] [-a AUDIENCE] [-k]
#
#   -s SERVER       the server's base URL, http:// or https://    (or TCB_SERVER)
#   -t TEMPLATE_ID  the job template's id                          (or TCB_TEMPLATE_ID)
#   -c KEY          the template's host_config_key                 (or TCB_HOST_CONFIG_KEY)
#   -e EXTRA_VARS   extra variables, JSON or YAML text             (or TCB_EXTRA_VARS)
#                   sent as one JSON string; this script escapes it, so, unlike AWX's
#                   request_tower_configuration.sh, write -e '{"a": 1}' as it is
#   -a AUDIENCE     the audience of the GCP identity token         (or TCB_GCP_AUDIENCE)
#                   default: SERVER with one trailing slash, the server's default gcp_audience
#   -k              allow an untrusted TLS certificate (curl -k)   (or TCB_INSECURE=1)
#   -h              show this help
#
# Cloud identity. The script asks the AWS instance metadata service (IMDSv2) for the
# signed instance identity document, else the GCP metadata server for an identity
# token, and sends it as the body's "cloud_identity": the server verifies it, so a
# host behind NAT is told apart from its neighbours. When neither answers (short
# timeouts), it posts without an identity and the server matches the host by address.
#   TCB_AWS_METADATA_URL  default http://169.254.169.254
#   TCB_GCP_METADATA_URL  default http://metadata.google.internal
#   TCB_AWS_PROOF         signature (default) or rsa2048: the signature form whose AWS
#                         certificates the server was given (AWS publishes one per form)
#   TCB_NONCE_FILE        default /var/lib/tcb-callback/nonce. On AWS, a random nonce made
#                         on the first run and kept here, readable by root only: the server
#                         binds the instance to it, so a document copied by another process
#                         is useless without it. Keep it across reboots; if it is lost, an
#                         admin resets the binding (tornado-callback identity reset aws ID).
#
# Retries, as AWX's script: any 2xx answer is success (exit 0); 404 stops at once
# (exit 1); any other answer is retried, every TCB_RETRY_DELAY seconds (default 60)
# for TCB_ATTEMPTS posts in all (default 10), then exit 1. A curl error (server
# unreachable, TLS) stops at once with curl's exit code. Every attempt reads a fresh
# identity: the server accepts a GCP token only once.
#
# User data (cloud-init runs it as root at first boot):
#   #!/bin/sh
#   # from wherever you keep this script (or bake it into the image)
#   curl -fsS -o /tmp/tcb-callback.sh https://files.example.com/tcb-callback.sh
#   sh /tmp/tcb-callback.sh -s https://callback.example.com -t 7 -c 0123abcd
#
# POSIX sh, curl, awk, od: nothing else, for fresh minimal images.

set -u

fatal() {
    printf 'Error: %s\n' "$2" >&2
    exit "$1"
}

usage() {
    # The header above, without its comment marks: one text for readers and for -h.
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
}

nl='
'

# A JSON string (with its quotes) holding $1 exactly: backslash, quote and every
# control character escaped, line breaks included (awk reads line by line, so they
# are put back between lines, and after the last one when the text ends with one).
json_string() {
    case $1 in
        *"$nl") trailing=1 ;;
        *) trailing=0 ;;
    esac
    # LC_ALL=C: awk works on bytes, so UTF-8 text passes through as it came.
    printf '%s' "$1" | LC_ALL=C awk -v trailing="$trailing" '
        BEGIN {
            for (i = 1; i < 32; i++) escaped[sprintf("%c", i)] = sprintf("\\u%04x", i)
            escaped["\\"] = "\\\\"
            escaped["\""] = "\\\""
            printf "\""
        }
        {
            if (NR > 1) printf "\\n"
            out = ""
            n = length($0)
            for (i = 1; i <= n; i++) {
                c = substr($0, i, 1)
                out = out ((c in escaped) ? escaped[c] : c)
            }
            printf "%s", out
        }
        END {
            if (NR > 0 && trailing) printf "\\n"
            printf "\""
        }'
}

# A metadata service's answer, into $answer byte for byte (the x keeps the trailing
# line breaks that command substitution would drop). Never through a proxy: the
# metadata services are link-local. They answer in milliseconds, so a short timeout
# tells quickly that this host is not on that cloud.
metadata() {
    answer=$(curl -sf --noproxy '*' --connect-timeout 2 --max-time 5 "$@" && printf x) || return 1
    answer=${answer%x}
}

# The nonce kept in $nonce_file, made on the first run. Created complete under a
# temporary name and linked into place, which fails if it exists: of two runs at
# once, both end up with the one that got there first.
load_nonce() {
    if [ ! -e "$nonce_file" ]; then
        fresh=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n') || fatal 1 "cannot read /dev/urandom"
        (
            umask 077
            mkdir -p "$(dirname "$nonce_file")" &&
                printf '%s\n' "$fresh" >"$nonce_file.$$" &&
                { ln "$nonce_file.$$" "$nonce_file" 2>/dev/null; rm -f "$nonce_file.$$"; }
        ) || fatal 1 "cannot write the nonce file $nonce_file"
        echo "Made a new nonce in $nonce_file."
    fi
    nonce=$(cat "$nonce_file") || fatal 1 "cannot read the nonce file $nonce_file"
    # The server refuses a nonce shorter than 16 characters; a made one has 64.
    [ "${#nonce}" -ge 16 ] ||
        fatal 1 "the nonce file $nonce_file is damaged: remove it, and ask an admin to reset this instance's binding"
}

# AWS: the document and its signature, read with an IMDSv2 session token. Returns 2
# when no IMDS gave a token (not AWS), 1 when it did but the identity could not be read.
aws_identity() {
    metadata -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$aws_url/latest/api/token" || return 2
    session="X-aws-ec2-metadata-token: $answer"
    metadata -H "$session" "$aws_url/latest/dynamic/instance-identity/document" || return 1
    document=$answer
    metadata -H "$session" "$aws_url/latest/dynamic/instance-identity/$aws_proof" || return 1
    [ -n "${nonce:-}" ] || load_nonce
    identity='{"provider": "aws", "document": '$(json_string "$document")', "'$aws_proof'": '$(json_string "$answer")', "nonce": '$(json_string "$nonce")'}'
}

# GCP: an identity token for the server's audience, with the instance's facts (format=full).
gcp_identity() {
    metadata -G -H 'Metadata-Flavor: Google' --data-urlencode "audience=$audience" \
        --data-urlencode 'format=full' \
        "$gcp_url/computeMetadata/v1/instance/service-accounts/default/identity" || return 1
    identity='{"provider": "gcp", "token": '$(json_string "$answer")'}'
}

# Sets $identity for this attempt (empty: none). The first attempt finds the cloud.
read_identity() {
    case $provider in
        aws) aws_identity ;;
        gcp) gcp_identity ;;
        none) identity= ;;
        *)
            aws_identity
            case $? in
                0) provider=aws ;;
                1) provider=aws; return 1 ;;
                *)
                    if gcp_identity; then
                        provider=gcp
                    else
                        provider=none
                        identity=
                        echo "No cloud metadata service answered ($aws_url, $gcp_url): posting without a cloud identity; the server matches this host by its address."
                    fi
                    ;;
            esac
            ;;
    esac
}

server=${TCB_SERVER:-}
template_id=${TCB_TEMPLATE_ID:-}
key=${TCB_HOST_CONFIG_KEY:-}
extra_vars=${TCB_EXTRA_VARS:-}
audience=${TCB_GCP_AUDIENCE:-}
insecure=${TCB_INSECURE:-}
while getopts 'hks:t:c:e:a:' option; do
    case $option in
        h) usage; exit 0 ;;
        s) server=$OPTARG ;;
        t) template_id=$OPTARG ;;
        c) key=$OPTARG ;;
        e) extra_vars=$OPTARG ;;
        a) audience=$OPTARG ;;
        k) insecure=1 ;;
        *) usage >&2; exit 2 ;;
    esac
done

[ -n "$server" ] || fatal 2 "missing the server: -s or TCB_SERVER"
case $server in
    http://*|https://*) server=${server%/} ;;
    *) fatal 2 "the server must begin with http:// or https://" ;;
esac
case $template_id in
    ''|*[!0-9]*) fatal 2 "the template id must be a number: -t or TCB_TEMPLATE_ID" ;;
esac
[ -n "$key" ] || fatal 2 "missing the host config key: -c or TCB_HOST_CONFIG_KEY"
[ -n "$audience" ] || audience=$server/
aws_url=${TCB_AWS_METADATA_URL:-http://169.254.169.254}
gcp_url=${TCB_GCP_METADATA_URL:-http://metadata.google.internal}
aws_proof=${TCB_AWS_PROOF:-signature}
case $aws_proof in
    signature|rsa2048) ;;
    *) fatal 2 "TCB_AWS_PROOF must be signature or rsa2048" ;;
esac
nonce_file=${TCB_NONCE_FILE:-/var/lib/tcb-callback/nonce}
attempts=${TCB_ATTEMPTS:-10}
delay=${TCB_RETRY_DELAY:-60}
case $attempts$delay in
    *[!0-9]*) fatal 2 "TCB_ATTEMPTS and TCB_RETRY_DELAY must be numbers" ;;
esac
url=$server/api/v2/job_templates/$template_id/callback/
provider=

attempt=0
while [ "$attempt" -lt "$attempts" ]; do
    attempt=$((attempt + 1))
    if read_identity; then
        body='{"host_config_key": '$(json_string "$key")
        [ -z "$extra_vars" ] || body=$body', "extra_vars": '$(json_string "$extra_vars")
        [ -z "$identity" ] || body=$body', "cloud_identity": '$identity
        # The body on stdin, not the command line, where any user could read the key.
        response=$(printf '%s}' "$body" | curl -sS ${insecure:+-k} -X POST -H 'Content-Type: application/json' \
            --data-binary @- -w "$nl%{http_code}" "$url")
        rc=$?
        [ "$rc" -eq 0 ] || fatal "$rc" "curl exited with $rc, halting."
        status=${response##*"$nl"}
        answered=${response%"$nl"*}
        case $status in
            2??) echo "Success: $status received. $answered"; exit 0 ;;
            404) fatal 1 "404 received, halting. $answered" ;;
        esac
        echo "Failed: $status received. $answered"
    else
        echo "Failed: the $provider metadata service did not give this instance's identity."
    fi
    if [ "$attempt" -lt "$attempts" ]; then
        echo "Retry $attempt of $((attempts - 1)) in $delay s."
        sleep "$delay"
    fi
done
fatal 1 "no success after $attempts attempts, giving up."
