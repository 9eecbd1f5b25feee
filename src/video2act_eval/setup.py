from setuptools import setup

package_name = "video2act_eval"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Video2Act maintainers",
    maintainer_email="maintainers@video2act.dev",
    description="Video2Act evaluation tools: closed-loop evaluation on the simulated arm, the manipulation "
    "benchmark, rosbag replay through the nodes, and the demo with its node launcher.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["video2act-demo = video2act_eval.demo:main"]},
)
